"""``python -m rpn_exp.report``: rebuilds the summary files from the records on disk."""

import pytest

from rpn_exp.report import main
from rpn_exp.run.record import write_record
from rpn_exp.sweep.summary import read_csv
from tests.conftest import multirun, record


def test_report_writes_the_summary_into_the_sweep_folder(tmp_path, capsys):
    write_record(tmp_path / "0", record("lphm", 983, 0.80))
    write_record(tmp_path / "1", record("hm", 2453, 0.60, status="diverged", error="training loss became nan"))
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| ★ | 0 | completed |" in out and "- job `1` (diverged): training loss became nan" in out
    rows = read_csv(tmp_path / "summary.csv")
    assert [(r["job"], r["status"], r["pareto"]) for r in rows] == [("0", "completed", "True"), ("1", "diverged", "False")]
    assert (tmp_path / "summary.md").is_file() and (tmp_path / "pareto.png").is_file()


def test_several_sweeps_are_merged_into_out(tmp_path):
    write_record(tmp_path / "a" / "0", record("lphm", 983, 0.80))
    write_record(tmp_path / "b" / "0", record("lorr", 5000, 0.90))
    assert main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "merged")]) == 0
    assert [r["job"] for r in read_csv(tmp_path / "merged" / "summary.csv")] == ["a/0", "b/0"]
    assert not (tmp_path / "a" / "summary.csv").exists()


def test_a_summary_kept_without_its_runs_is_merged_with_new_sweeps(tmp_path):
    write_record(tmp_path / "old" / "0", record("lphm", 983, 0.80, seed=1))
    write_record(tmp_path / "old" / "1", record("lphm", 983, 0.82, seed=2))
    assert main([str(tmp_path / "old")]) == 0
    published = tmp_path / "published"
    published.mkdir()
    (published / "summary.csv").write_text((tmp_path / "old" / "summary.csv").read_text())  # the runs are gone
    write_record(tmp_path / "new" / "0", record("lorr", 500, 0.85))
    assert main([str(published), str(tmp_path / "new"), "--out", str(tmp_path / "merged")]) == 0
    rows = {r["job"]: r for r in read_csv(tmp_path / "merged" / "summary.csv")}
    assert set(rows) == {"0", "1", "new/0"}
    assert rows["new/0"]["pareto"] == "True" and rows["0"]["pareto"] == "False"  # the front over all rows
    (pooled,) = [r for r in read_csv(tmp_path / "merged" / "summary_by_config.csv") if r["reconciliation"] == "lphm"]
    assert pooled["n"] == "2" and float(pooled["test_acc_mean"]) == pytest.approx(0.81)


def test_merging_without_out_says_what_to_add(tmp_path, capsys):
    assert main([str(tmp_path), str(tmp_path)]) == 2
    assert "--out" in capsys.readouterr().err


def test_a_missing_or_empty_folder_is_an_error_that_names_it(tmp_path, capsys):
    assert main([str(tmp_path / "nope")]) == 2
    assert "nope is not a folder" in capsys.readouterr().err
    assert main([str(tmp_path)]) == 1
    assert f"no job folders (result.json or .hydra/overrides.yaml) under {tmp_path}" in capsys.readouterr().err


@pytest.mark.slow
def test_merged_sweeps_that_spell_one_model_differently_pool_it_once(tmp_path):
    """Sweep a leaves the default dual_lphm r=5 unspelled; sweep b spells it out and adds r=2. Merged, r=5 is one
    configuration of three seeds, r=2 another of one."""
    _, a = multirun(tmp_path / "a", "seed=1,2")
    _, b = multirun(tmp_path / "b", "reconciliation=dual_lphm", "reconciliation.r=5,2", "seed=3")
    assert main([str(a), str(b), "--out", str(tmp_path / "merged")]) == 0
    groups = {g["config"]: g for g in read_csv(tmp_path / "merged" / "summary_by_config.csv")}
    assert set(groups) == {"reconciliation.r=5", "reconciliation.r=2"}
    assert (groups["reconciliation.r=5"]["n"], groups["reconciliation.r=5"]["seeds"]) == ("3", "1 2 3")
    assert groups["reconciliation.r=2"]["n"] == "1"
    rows = read_csv(tmp_path / "merged" / "summary.csv")
    pooled = {r["configuration"] for r in rows if r["r"] == "5"}
    assert len(pooled) == 1 and len(rows) == 4


def test_merged_sweeps_whose_seeds_overlap_count_each_configuration_and_seed_once(tmp_path, capsys):
    """Sweeps over seeds 1, 2 and 2, 3 of one configuration: merged, n = 3 (seed 2 once, from the folder given
    first), the repeat named in summary.md and summary.csv and kept off the front."""
    for folder, seed, acc in (("a", 1, 0.80), ("a", 2, 0.82), ("b", 2, 0.86), ("b", 3, 0.84)):
        write_record(tmp_path / folder / str(seed), record("lphm", 983, acc, seed=seed, configuration="lphm-r2"))
    for order, kept, repeat, mean in ((["a", "b"], "a/2", "b/2", (0.80 + 0.82 + 0.84) / 3),
                                      (["b", "a"], "b/2", "a/2", (0.86 + 0.84 + 0.80) / 3)):
        out = tmp_path / f"merged-{''.join(order)}"
        assert main([*(str(tmp_path / f) for f in order), "--out", str(out)]) == 0
        (pooled,) = read_csv(out / "summary_by_config.csv")
        assert (pooled["n"], sorted(pooled["seeds"].split())) == ("3", ["1", "2", "3"])
        assert float(pooled["test_acc_mean"]) == pytest.approx(mean)
        rows = {r["job"]: r for r in read_csv(out / "summary.csv")}
        assert rows[repeat]["repeat_of"] == kept and rows[repeat]["pareto"] == "False"
        assert [job for job, r in rows.items() if r["repeat_of"]] == [repeat]
        assert f"`{repeat}` (repeats `{kept}`)" in (out / "summary.md").read_text()
