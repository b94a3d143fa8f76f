"""``result.json`` (``rpn_exp.run.record``): the status vocabulary, atomic writes that keep the last good record,
and the one-line summary."""

import json
import os

import pytest

from rpn_exp.run import record as R


def test_a_status_is_its_string_in_json_and_in_comparisons():
    assert R.Status.COMPLETED == "completed" and json.dumps({"s": R.Status.DIVERGED}) == '{"s": "diverged"}'
    assert R.FINAL == {"completed", "dry_run", "diverged", "pruned", "interrupted", "failed"}
    assert R.DONE == {"completed", "pruned"}  # the final outcomes a resumed sweep keeps
    assert R.Status.RUNNING not in R.FINAL and R.Status.KILLED not in R.FINAL


def test_a_record_is_written_whole_and_read_back(tmp_path):
    record = {"status": R.Status.COMPLETED, "metrics": {"test/acc": 0.5}}
    R.write_record(tmp_path, record)
    assert R.read_record(tmp_path) == {"status": "completed", "metrics": {"test/acc": 0.5}}
    assert [p.name for p in tmp_path.iterdir()] == [R.RECORD_FILE]  # no temporary file left


def test_a_failed_write_keeps_the_last_good_record(tmp_path, monkeypatch):
    R.write_record(tmp_path, {"status": "running"})

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        R.write_record(tmp_path, {"status": "completed"})
    assert R.read_record(tmp_path) == {"status": "running"}
    assert [p.name for p in tmp_path.iterdir()] == [R.RECORD_FILE]


def test_the_summary_line_says_status_model_size_and_accuracy():
    line = R.summary_line({"status": "completed", "dataset": "digits", "expansion": "taylor",
                           "reconciliation": "lorr", "reconciliation_hparams": {"r": 2}, "learnable_params": 1234,
                           "compression_vs_identity": 2.5, "metrics": {"test/acc": 0.91234}, "wall_time_s": 3.21,
                           "output_dir": "/runs/x"})
    assert line == ("rpn_exp [completed] | digits | taylor x lorr r=2 | 1,234 learnable params (2.5x fewer than "
                    "identity) | test acc 0.9123 | 3.2 s | /runs/x")


def test_a_running_record_of_a_process_that_is_gone_is_told_apart(tmp_path):
    import socket
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert not R.process_alive({"pid": int(gone.stdout), "host": socket.gethostname()})
    assert R.process_alive({"pid": os.getpid(), "host": socket.gethostname()})
    assert R.process_alive({"pid": 1, "host": "another-machine"})  # cannot be told: assumed alive


def test_the_summary_line_is_true_for_baselines_layer_overrides_and_early_failures():
    mlp = {"status": "completed", "model": "mlp", "dataset": "digits", "widths": [64, 32, 10],
           "expansion": "identity", "reconciliation": "identity", "learnable_params": 2410,
           "compression_vs_identity": 1.0, "metrics": {}, "output_dir": "x"}
    assert "| digits | mlp 64-32-10 | 2,410 learnable params | x" in R.summary_line(mlp)
    mixed = {"status": "completed", "model": "rpn", "dataset": "digits", "expansion": "taylor",
             "reconciliation": "dual_lphm", "reconciliation_hparams": {"r": 5},
             "layers": [{"reconciliation": "dual_lphm", "r": 5, "k": 1, "p": 8, "q": 64}, {"reconciliation": "identity"}],
             "output_dir": "x"}
    assert "| taylor x dual_lphm/identity r=5 k=1 p=8 q=64 |" in R.summary_line(mixed)
    fitted = {**mixed, "layers": [{"reconciliation": "lphm", "r": 5, "k": 1, "p": 8, "q": 64},
                                  {"reconciliation": "lphm", "r": 5, "k": 1, "p": 5, "q": 128}]}
    assert "| taylor x lphm r=5 k=1 p=8/5 q=64/128 |" in R.summary_line(fitted)  # each layer's p and q in force
    failed = {"status": "failed", "choices": {"dataset": "mnist", "expansion": "taylor", "reconciliation": "lorr"},
              "reconciliation_hparams": {"r": 5}, "error": "invalid configuration: ...", "output_dir": "x"}
    assert R.summary_line(failed).startswith("rpn_exp [failed] | mnist | taylor x lorr r=5 | error: invalid")


@pytest.mark.parametrize("text, why", [
    ("[1, 2]", "it holds a JSON list, not an object"),
    ('{"metrics": {}}', "it has no status"),
    ('{"status": 3, "metrics": [0.9]}', "status is a int; metrics is a list"),
])
def test_valid_json_of_another_shape_is_not_a_record(tmp_path, text, why):
    (tmp_path / R.RECORD_FILE).write_text(text)
    with pytest.raises(ValueError, match=f"not a record of rpn_exp: {why}"):
        R.read_record(tmp_path)


def test_a_report_lists_a_record_of_another_shape_as_unreadable(tmp_path, capsys):
    from rpn_exp.report import main as report
    from rpn_exp.sweep.summary import read_csv

    for job, text in (("000_a", '{"status": "completed", "metrics": {"test/acc": 0.5}}'), ("001_b", "[1]")):
        (tmp_path / job).mkdir()
        (tmp_path / job / R.RECORD_FILE).write_text(text)
    assert report([str(tmp_path)]) == 0
    statuses = {row["job"]: row["status"] for row in read_csv(tmp_path / "summary.csv")}
    assert statuses == {"000_a": "completed", "001_b": "unreadable"}


def test_the_refusals_of_a_sweep_are_kept_beside_its_jobs(tmp_path):
    R.note_refused(tmp_path, "000_a", "settings changed")
    R.note_refused(tmp_path, "001_b", "in use")
    assert R.read_refused(tmp_path) == [{"job": "000_a", "why": "settings changed"}, {"job": "001_b", "why": "in use"}]
    assert R.read_refused(tmp_path / "none") == []


def test_an_error_shown_in_one_line_keeps_what_went_wrong_and_how_to_fix_it():
    from rpn_exp.run.record import one_line

    listed = "mnist not found. Searched:\n  - /a\n  - /b\nTo get it:\n  * put the files there\n  * or set download=true"
    assert one_line(listed) == ("mnist not found. Searched: /a; /b; To get it: put the files there; or set "
                                "download=true")
    long = "what went wrong: " + "x" * 1000 + " so give root=<folder>"
    shown = one_line(long, limit=120)
    assert len(shown) == 120 and shown.startswith("what went wrong: ") and shown.endswith(" so give root=<folder>")
    assert " … " in shown and one_line("short") == "short"
