"""Checkpoints you can resume from, and records that survive faults: each test inflicts the fault itself.

SIGKILL and SIGTERM are sent by the run to itself at a chosen step (``tests.callbacks.SignalFromEnv``); the full
disk is a real 512 KiB tmpfs (root only).
"""

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from rpn_exp.run.checkpointing import atomic_torch_save
from rpn_exp.run.record import read_record, write_json
from rpn_exp.run.task import train
from rpn_exp.sweep.summary import read_csv
from tests.conftest import FAST, run_cli

SIGNAL = "+callbacks.signal._target_=tests.callbacks.SignalFromEnv"
COMPARED = ("test/acc", "test/loss", "val/acc_best", "val/loss", "train/loss_epoch", "train/acc")


def same_metrics(a: dict, b: dict) -> None:
    assert {k: a["metrics"][k] for k in COMPARED} == {k: b["metrics"][k] for k in COMPARED}


def test_two_epochs_then_resume_to_four_equals_four_epochs(make_config, tmp_path):
    train(make_config(*FAST, "trainer.max_epochs=4", output_dir=tmp_path / "straight"))
    train(make_config(*FAST, "trainer.max_epochs=2", output_dir=tmp_path / "resumed"))
    last = tmp_path / "resumed" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["epoch"] == 1  # the end of the second epoch
    train(make_config(*FAST, "trainer.max_epochs=4", f"ckpt_path={last}", output_dir=tmp_path / "resumed"))
    straight, resumed = read_record(tmp_path / "straight"), read_record(tmp_path / "resumed")
    assert resumed["status"] == "completed" and resumed["resumed_from"] == str(last)
    assert resumed["global_step"] == straight["global_step"] == 20
    same_metrics(straight, resumed)  # identical: data order, RNG states, optimizer and scheduler all continue


def test_last_ckpt_is_the_last_epoch_not_the_best(make_config, tmp_path):
    train(make_config(*FAST, "trainer.max_epochs=3", "optimizer.lr=1e-12", output_dir=tmp_path))  # val/acc flat
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["epoch"] == 2 and checkpoint["global_step"] == 15
    assert "rng_states" in checkpoint and {"torch", "numpy", "python"} <= set(checkpoint["rng_states"])
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.fixture
def tiny_disk(tmp_path):
    """A 512 KiB tmpfs: a real file system that fills up."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def fill(disk: Path) -> None:
    """Write zeros until the file system is full (the last write and the close fail with ENOSPC)."""
    try:
        with open(disk / "filler", "wb") as handle:
            while True:
                handle.write(b"\0" * 4096)
                handle.flush()
    except OSError:
        pass


def test_a_full_disk_keeps_the_last_good_record_and_checkpoint(tiny_disk):
    write_json(tiny_disk / "result.json", {"status": "running"})
    atomic_torch_save({"w": torch.zeros(100)}, tiny_disk / "last.ckpt")
    fill(tiny_disk)
    with pytest.raises(OSError):
        write_json(tiny_disk / "result.json", {"status": "completed", "padding": "x" * 100_000})
    with pytest.raises(OSError):
        atomic_torch_save({"w": torch.zeros(100_000)}, tiny_disk / "last.ckpt")
    assert json.loads((tiny_disk / "result.json").read_text()) == {"status": "running"}
    assert torch.equal(torch.load(tiny_disk / "last.ckpt")["w"], torch.zeros(100))
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler", "last.ckpt", "result.json"]  # no .tmp left


def test_a_run_that_meets_a_full_disk_says_so_and_keeps_its_last_good_record(make_config, tiny_disk, capsys):
    run = tiny_disk / "run"
    write_json(run / "result.json", {"status": "completed", "metrics": {"test/acc": 0.9}})  # an earlier outcome
    fill(tiny_disk)
    with pytest.raises(OSError) as failure:  # the first write of the new run that meets the full disk
        train(make_config(*FAST, "logger=csv", output_dir=run))
    assert failure.value.errno == 28  # ENOSPC, the real error, not a wrapped one
    err = capsys.readouterr().err
    assert f"could not write {run / 'result.json'}" in err and "its last good version is kept" in err
    assert json.loads((run / "result.json").read_text())["metrics"] == {"test/acc": 0.9}
    assert not list(tiny_disk.rglob("*.tmp")) and not list(tiny_disk.rglob("*.ckpt"))  # nothing truncated


def fill_to(disk: Path, free: int) -> None:
    """Fill the file system until about ``free`` bytes are left."""
    stats = os.statvfs(disk)
    (disk / "filler").write_bytes(b"\0" * max(0, stats.f_bavail * stats.f_frsize - free))


@pytest.mark.slow
def test_a_disk_that_fills_during_training_leaves_a_true_record_and_one_line(tiny_disk):
    fill_to(tiny_disk, 160 * 1024)
    run = tiny_disk / "run"
    done = run_cli(f"hydra.run.dir={run}", "trainer.max_epochs=30", "callbacks.progress_bar.refresh_rate=0",
                   "print_config=false")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) <= 3 and "no space left on device" in errors[-1], done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    record = read_record(run)
    assert record["status"] == "failed" and record["error"].startswith("no space left on device")
    assert not list(tiny_disk.rglob("*.tmp"))
    last = run / "checkpoints" / "last.ckpt"
    if last.is_file():  # the last good checkpoint, whole
        assert torch.load(last, weights_only=False)["epoch"] >= 1
    rows = read_csv(_report(run))
    assert rows[0]["status"] == "failed"


def _report(folder: Path) -> Path:
    from rpn_exp.report import main

    assert main([str(folder), "--out", str(folder.parent.parent / "report")]) == 0
    return folder.parent.parent / "report" / "summary.csv"


def test_a_running_record_without_its_reserve_reads_unknown_with_it_killed(tmp_path):
    from rpn_exp.run.record import RESERVE_FILE, Status, reserve_space
    from rpn_exp.sweep.rows import job_row

    dead = subprocess.Popen(["true"])
    dead.wait()
    write_json(tmp_path / "result.json", {"status": "running", "pid": dead.pid, "host": os.uname().nodename})
    reserve_space(tmp_path)
    assert (tmp_path / RESERVE_FILE).stat().st_size > 0
    assert job_row(tmp_path)["status"] == Status.KILLED  # it never reached its end
    (tmp_path / RESERVE_FILE).unlink()
    row = job_row(tmp_path)
    assert row["status"] == Status.UNKNOWN and "could not write its outcome" in row["error"]


@pytest.mark.slow
def test_sigterm_is_recorded_and_exits_non_zero_then_the_run_resumes(tmp_path):
    env = {**os.environ, "RPN_TEST_SIGNAL": ":7:SIGTERM"}
    done = run_cli("trainer.max_epochs=4", *FAST, SIGNAL, f"paths.log_dir={tmp_path}", env=env)
    assert done.returncode == 143, done.stderr[-2000:]
    record = json.loads(next(tmp_path.rglob("result.json")).read_text())
    assert record["status"] == "interrupted" and "SIGTERM" in record["error"]
    assert record["global_step"] in (7, 8) and Path(record["last_checkpoint"]).name == "last.ckpt"
    assert torch.load(record["last_checkpoint"], weights_only=False)["global_step"] == 5  # end of epoch 0
    assert Path(record["interrupted_checkpoint"]).is_file()
    again = run_cli("trainer.max_epochs=4", *FAST, SIGNAL, f"ckpt_path={record['last_checkpoint']}",
                    f"paths.log_dir={tmp_path / 'again'}")
    assert again.returncode == 0, again.stderr[-2000:]


@pytest.mark.slow
def test_a_diverged_single_run_exits_non_zero(tmp_path):
    done = run_cli(*FAST, "optimizer=sgd", "optimizer.lr=1e30", "expansion.postprocess=null",
                   f"paths.log_dir={tmp_path}")
    assert done.returncode == 1 and "training loss became" in done.stderr
    assert "Traceback" not in done.stderr  # one line says it
    assert sum(line.startswith("Error: diverged: training loss became") for line in done.stderr.splitlines()) == 1
    assert json.loads(next(tmp_path.rglob("result.json")).read_text())["status"] == "diverged"


@pytest.mark.slow
def test_sigkill_mid_sweep_then_resume_equals_an_uninterrupted_sweep(tmp_path):
    sweep = ["reconciliation=lphm,dual_lphm,hm", "trainer.max_epochs=4", SIGNAL, *FAST]
    folder = tmp_path / "killed"
    env = {**os.environ, "RPN_TEST_SIGNAL": "001:13:SIGKILL"}  # job 1, in its third epoch
    killed = run_cli("-m", *sweep, f"hydra.sweep.dir={folder}", env=env)
    assert killed.returncode == -signal.SIGKILL
    from rpn_exp.report import main as report

    assert report([str(folder)]) == 0
    statuses = {row["job"]: row["status"] for row in read_csv(folder / "summary.csv")}
    assert statuses == {"000_lphm": "completed", "001_dual_lphm": "killed", "002_hm": "pending"}

    resumed = run_cli("-m", *sweep, f"hydra.sweep.dir={folder}", "skip_completed=true")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    job = json.loads((folder / "001_dual_lphm" / "result.json").read_text())
    assert job["status"] == "completed" and job["resumed_from"].endswith("001_dual_lphm/checkpoints/last.ckpt")
    assert {row["status"] for row in read_csv(folder / "summary.csv")} == {"completed"}

    reference = tmp_path / "reference"
    straight = run_cli("-m", *sweep, f"hydra.sweep.dir={reference}")
    assert straight.returncode == 0, straight.stderr[-2000:]
    for name in ("000_lphm", "001_dual_lphm", "002_hm"):
        same_metrics(json.loads((folder / name / "result.json").read_text()),
                     json.loads((reference / name / "result.json").read_text()))
    checkpoints = sorted(p.name for p in (folder / "001_dual_lphm" / "checkpoints").iterdir())
    assert checkpoints[-1] == "last.ckpt" and all(n.startswith("best-") for n in checkpoints[:-1])
    assert not list(folder.rglob("*.tmp"))
    shutil.rmtree(reference)


@pytest.mark.parametrize("into", ["a new folder", "its own folder", "its own folder, moved"])
def test_a_run_resumed_from_ckpt_path_tests_the_best_checkpoint_of_its_one_history(make_config, tmp_path, into):
    """The uninterrupted run's best epoch (2 of 0..3) comes before the resume point (the end of epoch 2 of 3): a
    resumed run that forgot it would test epoch 3's weights. A run folder moved elsewhere finds its best checkpoint
    beside ``last.ckpt``."""
    settings = [*FAST, "optimizer.lr=0.1", "seed=1"]
    train(make_config(*settings, "trainer.max_epochs=4", output_dir=tmp_path / "straight"))
    straight = read_record(tmp_path / "straight")
    assert straight["best_checkpoint"].endswith("best-epoch002.ckpt")
    train(make_config(*settings, "trainer.max_epochs=3", output_dir=tmp_path / "first"))
    if into.endswith("moved"):
        (tmp_path / "first").rename(tmp_path / "moved")
    folder = tmp_path / {"a new folder": "second", "its own folder": "first"}.get(into, "moved")
    last = folder.parent / ("moved" if into.endswith("moved") else "first") / "checkpoints" / "last.ckpt"
    train(make_config(*settings, "trainer.max_epochs=4", f"ckpt_path={last}", output_dir=folder))
    resumed = read_record(folder)
    assert resumed["best_checkpoint"] == str(folder / "checkpoints" / "best-epoch002.ckpt")
    assert Path(resumed["best_checkpoint"]).is_file() and resumed["global_step"] == straight["global_step"]
    same_metrics(straight, resumed)


def test_a_checkpoint_from_the_middle_of_an_epoch_is_refused_with_where_to_resume(make_config, tmp_path):
    from rpn_exp.config.build import ConfigError

    with pytest.raises(SystemExit):  # Lightning ends a run interrupted by Ctrl-C with exit status 1
        train(make_config(*FAST, "trainer.max_epochs=3", "+callbacks.interrupt._target_=tests.callbacks.InterruptAt",
                          "+callbacks.interrupt.step=7", output_dir=tmp_path / "stopped"))
    stopped = read_record(tmp_path / "stopped")
    assert stopped["status"] == "interrupted" and Path(stopped["interrupted_checkpoint"]).is_file()
    with pytest.raises(ConfigError, match=r"interrupted.ckpt was saved in the middle of epoch 1 \(after 1 of its "
                                          r"batches\).*resume from .*last.ckpt instead \(the end of epoch 0\)"):
        train(make_config(*FAST, "trainer.max_epochs=3", f"ckpt_path={stopped['interrupted_checkpoint']}",
                          output_dir=tmp_path / "resumed"))


#: A stacked member written while stacked groups had their own training loop (tests/fixtures/checkpoint_stacked_member):
#: its last.ckpt holds no Lightning loop or callback state, and names its best checkpoint in the folder it was written
#: to.
MEMBER = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoint_stacked_member"
MEMBER_SETTINGS = ["seed=2", "optimizer.lr=0.05", "callbacks.progress_bar.refresh_rate=0", "threads=1"]


def test_a_stacked_members_last_checkpoint_resumes_to_its_recorded_accuracy(make_config, tmp_path):
    """Resumed with its own settings (nothing left to train), into its folder copied here: the run tests the best
    checkpoint beside ``last.ckpt`` (epoch 4 of 0..5), to the member's recorded accuracy."""
    folder = Path(shutil.copytree(MEMBER, tmp_path / "member"))
    recorded = read_record(folder)
    last = folder / "checkpoints" / "last.ckpt"
    train(make_config(*MEMBER_SETTINGS, "trainer.max_epochs=6", f"ckpt_path={last}", output_dir=folder))
    resumed = read_record(folder)
    assert resumed["status"] == "completed" and "missing_best_checkpoint" not in resumed
    assert (resumed["epochs"], resumed["global_step"]) == (recorded["epochs"], recorded["global_step"]) == (6, 120)
    assert resumed["best_checkpoint"] == str(folder / "checkpoints" / "best-epoch004.ckpt")
    assert resumed["metrics"]["test/acc"] == recorded["metrics"]["test/acc"]


def test_a_stacked_members_last_checkpoint_resumed_to_more_epochs_ends_as_an_uninterrupted_run(make_config, tmp_path):
    """Without its loop state, Lightning would count the member's epochs from 0 again and train 8 more on top."""
    train(make_config(*MEMBER_SETTINGS, "trainer.max_epochs=8", output_dir=tmp_path / "straight"))
    train(make_config(*MEMBER_SETTINGS, "trainer.max_epochs=8", f"ckpt_path={MEMBER / 'checkpoints' / 'last.ckpt'}",
                      output_dir=tmp_path / "resumed"))
    straight, resumed = read_record(tmp_path / "straight"), read_record(tmp_path / "resumed")
    assert (resumed["epochs"], resumed["global_step"]) == (straight["epochs"], straight["global_step"]) == (8, 160)
    assert Path(resumed["best_checkpoint"]).name == Path(straight["best_checkpoint"]).name
    for key in COMPARED:  # the member's first epochs trained in a stack on another CPU (its float32 sums in another
        # order, other vector instructions): up to two of the 179 validation images and 5e-3 of a loss (1.5%) apart
        assert resumed["metrics"][key] == pytest.approx(straight["metrics"][key], abs=0.012 if "acc" in key else 5e-3), key
