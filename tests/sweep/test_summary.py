"""Sweep aggregation from records on disk: rows, the Pareto front, summary.csv/md and pareto.png."""

import math

import pytest

from rpn_exp.run.record import write_record
from rpn_exp.sweep.rows import COLUMNS, find_jobs, job_row, pareto_front, summarize
from rpn_exp.sweep.summary import default_title, format_markdown, read_csv, write_summary
from tests.conftest import record

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def hydra_job(folder, overrides):
    """What Hydra leaves in a job folder before the task runs."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))


@pytest.fixture
def sweep(tmp_path):
    """A sweep folder with jobs 0-4 and 10: four completed, one failed, one that left no record."""
    root = tmp_path / "sweep"
    write_record(root / "0", record("lphm", 983, 0.80, r=1))
    write_record(root / "1", record("lphm", 1198, 0.85, r=2))
    write_record(root / "2", record("dual_lphm", 417, 0.70, r=1))
    write_record(root / "10", record("dual_lphm", 834, 0.75, r=2))
    write_record(root / "3", {"status": "failed", "error": "invalid configuration: p=3 does not divide n=128\nmore",
                              "overrides": ["reconciliation.p=3"], "choices": {"reconciliation": "lphm"},
                              "reconciliation_hparams": {"r": 5, "p": 3}, "metrics": {}})
    hydra_job(root / "4", ["reconciliation=hm"])
    return root


def test_jobs_are_found_by_record_or_hydra_folder_in_numeric_order(sweep):
    assert [p.name for p in find_jobs([sweep])] == ["0", "1", "2", "3", "4", "10"]


def test_a_missing_folder_is_named_in_the_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere is not a folder"):
        find_jobs([tmp_path / "nowhere"])


def test_a_completed_row_carries_the_record(sweep):
    row = job_row(sweep / "1", sweep)
    assert set(row) == set(COLUMNS) | {"debug"}
    assert row["job"] == "1" and row["status"] == "completed" and row["reconciliation"] == "lphm"
    assert row["r"] == 2 and row["p"] == "8/2" and row["q"] == "64/128"  # per layer where layers differ
    assert row["learnable_params"] == 1198 and row["test_acc"] == 0.85 and row["val_acc_best"] == pytest.approx(0.84)


def test_failed_and_missing_jobs_keep_their_status_and_overrides(sweep):
    failed, missing = job_row(sweep / "3", sweep), job_row(sweep / "4", sweep)
    assert failed["status"] == "failed" and failed["reconciliation"] == "lphm" and failed["p"] == 3
    assert failed["error"] == "invalid configuration: p=3 does not divide n=128; more"  # every line, in one
    assert failed["test_acc"] == "" and failed["learnable_params"] == ""
    assert missing["status"] == "missing" and missing["overrides"] == "reconciliation=hm"
    assert "result.json" in missing["error"]


def test_an_unreadable_record_is_reported_not_raised(tmp_path):
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "result.json").write_text("{not json")
    row = job_row(tmp_path / "0", tmp_path)
    assert row["status"] == "unreadable" and "result.json" in row["error"]


def rows_of(points):
    return [{"status": "completed", "learnable_params": p, "test_acc": a} for p, a in points]


@pytest.mark.parametrize(
    "points, front",
    [
        ([(100, 0.5), (200, 0.6), (300, 0.55)], [0, 1]),  # 300 is beaten by 200: fewer params, more accuracy
        ([(300, 0.9), (100, 0.5), (200, 0.5)], [1, 0]),  # equal accuracy with more parameters is dominated
        ([(100, 0.5), (100, 0.5)], [0, 1]),  # identical runs are both optimal
        ([(100, 0.7), (100, 0.5)], [0]),
    ],
)
def test_pareto_front(points, front):
    assert pareto_front(rows_of(points)) == front


def test_the_front_ignores_runs_without_accuracy():
    rows = rows_of([(50, math.nan), (100, 0.5)]) + [{"status": "failed", "learnable_params": "", "test_acc": ""}]
    rows.append({"status": "diverged", "learnable_params": 10, "test_acc": 0.99})
    assert pareto_front(rows) == [1]


def test_summarize_marks_the_front(sweep):
    rows, left_out = summarize([sweep])
    assert left_out == 0
    assert [r["job"] for r in rows if r["pareto"]] == ["0", "1", "2", "10"]
    assert {r["job"]: r["status"] for r in rows}["4"] == "missing"


def test_merged_sweeps_name_jobs_by_their_folder(sweep, tmp_path):
    other = tmp_path / "other"
    write_record(other / "0", record("lorr", 5000, 0.95))
    rows, _ = summarize([sweep, other])
    assert "other/0" in [r["job"] for r in rows] and "sweep/0" in [r["job"] for r in rows]
    assert {r["job"] for r in rows if r["pareto"]} == {"sweep/2", "sweep/10", "sweep/0", "sweep/1", "other/0"}


def test_the_markdown_table_is_sorted_by_parameters_and_marks_the_front(sweep):
    text = format_markdown(summarize([sweep])[0])
    table = [line for line in text.splitlines() if line.startswith("| ") and "front" not in line]
    jobs = [line.split("|")[2].strip() for line in table]
    assert jobs[:4] == ["2", "10", "0", "1"]  # 417, 834, 983, 1,198 learnable parameters
    assert all(line.startswith("| ★") for line in table[:4]) and "1,198" in table[3]
    assert "Overrides shared by every job" not in text  # no override is common to all six jobs
    assert "6 jobs: 4 completed, 1 failed, 1 missing." in text
    assert "- job `3` (failed): invalid configuration: p=3 does not divide n=128" in text


def test_write_summary_writes_csv_markdown_and_png(sweep):
    rows, _ = summarize([sweep])
    paths = write_summary(sweep, rows, title="test sweep")
    back = read_csv(paths["csv"])
    assert [r["job"] for r in back] == [r["job"] for r in rows]
    assert list(back[0]) == list(COLUMNS)
    assert back[1]["learnable_params"] == "1198" and back[1]["pareto"] == "True" and back[4]["status"] == "missing"
    assert paths["md"].read_text().startswith("# Sweep summary: test sweep")
    assert paths["png"].read_bytes().startswith(PNG_SIGNATURE)


def test_a_sweep_with_nothing_completed_still_gets_a_plot(tmp_path):
    hydra_job(tmp_path / "0", ["reconciliation=hm"])
    paths = write_summary(tmp_path, summarize([tmp_path])[0])
    assert paths["png"].read_bytes().startswith(PNG_SIGNATURE)


def test_a_model_at_chance_is_never_on_the_front():
    rows = [{"status": "completed", "learnable_params": 417, "test_acc": 0.12, "widths": "64-128-10"},
            {"status": "completed", "learnable_params": 983, "test_acc": 0.30, "widths": "64-128-10"},
            {"status": "completed", "learnable_params": 20810, "test_acc": 0.14, "widths": "64-128-10"}]
    assert pareto_front(rows) == [1]  # 0.12 and 0.14 are within 0.05 of chance (0.1)


def test_debug_jobs_are_left_out_unless_asked_or_alone(tmp_path):
    write_record(tmp_path / "000", record("lphm", 983, 0.80))
    write_record(tmp_path / "001", record("hm", 2453, 0.90, debug=True))
    rows, left_out = summarize([tmp_path])
    assert [r["job"] for r in rows] == ["000"] and left_out == 1
    assert "1 debug job(s) left out" in format_markdown(rows, left_out)
    rows, left_out = summarize([tmp_path], include_debug=True)
    assert [r["job"] for r in rows] == ["000", "001"] and left_out == 0
    (tmp_path / "000" / "result.json").unlink()
    rows, left_out = summarize([tmp_path])  # a sweep made only of debug jobs is summarized as such
    assert [r["job"] for r in rows] == ["001"] and left_out == 0


def test_the_markdown_shows_the_optional_columns_only_when_they_vary(tmp_path):
    write_record(tmp_path / "000", record("lphm", 983, 0.80, seed=1, lr=0.01, widths=[64, 128, 10], epochs=30))
    write_record(tmp_path / "001", record("lphm", 983, 0.82, seed=2, lr=0.01, widths=[64, 128, 10], epochs=30))
    header = format_markdown(summarize([tmp_path])[0]).splitlines()[0]
    assert "| seed |" in header and "| lr |" not in header and "| widths |" not in header and "| epochs |" not in header
    assert read_csv(write_summary(tmp_path, summarize([tmp_path])[0])["csv"])[0]["widths"] == "64-128-10"


def test_the_title_names_the_task_dataset_and_epochs(tmp_path):
    folder = tmp_path / "rank_digits" / "multiruns" / "2026-11-22_10-00-00_000000"
    write_record(folder / "000", record("lphm", 983, 0.80, epochs=30))
    rows, _ = summarize([folder])
    assert default_title([folder], rows) == "rank_digits | digits | 30 epochs | 2026-11-22_10-00-00_000000"


def test_rows_whose_output_layer_cannot_reach_classes_minus_1_are_marked(tmp_path):
    limited, full = record("dual_lphm", 417, 0.19, r=1), record("dual_lphm", 2085, 0.92, r=5)
    for rec, (first, last) in ((limited, (1, 1)), (full, (25, 10))):
        rec["layers"][0]["rank_bound"], rec["layers"][1]["rank_bound"] = first, last
    write_record(tmp_path / "s" / "0", limited)
    write_record(tmp_path / "s" / "1", full)
    rows, _ = summarize([tmp_path / "s"])
    assert [(row["rank_bound"], row["rank_limited"]) for row in rows] == [(1, True), ("25/10", False)]
    text = format_markdown(rows)
    assert "| 1 ⚠ |" in text and "25/10 |" in text and "at rank 1 at most two classes" in text
    paths = write_summary(tmp_path / "s", rows)
    assert [r["rank_limited"] for r in read_csv(paths["csv"])] == ["True", "False"]


def test_baseline_rows_name_their_model_and_rpn_rows_default_to_rpn(tmp_path):
    write_record(tmp_path / "s" / "0", record("identity", 7850, 0.84, model="linear"))
    write_record(tmp_path / "s" / "1", record("dual_lphm", 9330, 0.86))  # a record from before the model field
    rows, _ = summarize([tmp_path / "s"])
    assert [row["model"] for row in rows] == ["linear", "rpn"]
    assert "| model |" in format_markdown(rows)  # shown because it varies


def test_a_column_constant_over_the_built_models_stays_hidden_while_jobs_are_pending_or_failed(sweep):
    """Every built model of the fixture is the rpn [64, 128, 10] at lr 0.01; the failed and missing jobs, and a
    pending one, have empty cells there, which do not make those columns vary."""
    rows, _ = summarize([sweep])
    pending = {**dict.fromkeys(COLUMNS, ""), "job": "11", "status": "pending", "pareto": False}
    header = format_markdown([*rows, pending]).splitlines()[0]
    assert "| status |" in header and "| r |" in header  # r differs among the built models
    assert not {"model", "widths", "lr", "epochs", "seed"} & {cell.strip() for cell in header.split("|")}


def test_the_summary_lists_the_numbers_drawn_for_labels_with_no_place(tmp_path):
    """Twenty jobs within 15% in parameters and 0.01 in accuracy, beside one far below: some labels give way to
    numbers, which summary.md explains."""
    for i in range(20):
        family = ("lphm", "dual_lphm")[i % 2]
        write_record(tmp_path / "s" / str(i), record(family, 9_000 + 65 * i, 0.85 + 0.0005 * i, r=i + 1))
    write_record(tmp_path / "s" / "20", record("lorr", 100, 0.3, r=1))
    paths = write_summary(tmp_path / "s", summarize([tmp_path / "s"])[0])
    text = paths["md"].read_text()
    assert "## Plot key" in text
    keyed = [line for line in text.splitlines() if line.startswith("| 1 |")]
    assert len(keyed) == 1 and "r=" in keyed[0] and "learnable parameters" in keyed[0]
