"""One process per job folder, and no job that outlives its sweep (``rpn_exp.run.ownership``)."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rpn_exp.run.ownership import FolderInUse, own_folder, release_folder
from tests.conftest import cli_command

HOLD = "import sys, time; from rpn_exp.run.ownership import own_folder; own_folder(sys.argv[1]); print('held', " \
       "flush=True); time.sleep(60)"


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped does not)."""
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state


def test_a_job_folder_is_owned_by_one_process_and_freed_when_it_dies(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(FolderInUse, match=rf"in use by another process \(pid {holder.pid}\)"):
        own_folder(tmp_path)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    own_folder(tmp_path)  # the kernel dropped the dead owner's lock
    own_folder(tmp_path)  # this process holds it already: nothing to do
    release_folder(tmp_path)


def test_a_second_run_into_a_busy_folder_is_refused_and_touches_nothing(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text("seed: 1\n")  # the owner's
    try:
        assert holder.stdout.readline().strip() == "held"
        done = subprocess.run(cli_command(f"hydra.run.dir={tmp_path}", "dry_run=true", "seed=2"), capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 2
        assert f"in use by another process (pid {holder.pid})" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "result.json").exists() and not (tmp_path / "train.log").exists()
        assert (tmp_path / ".hydra" / "config.yaml").read_text() == "seed: 1\n"  # Hydra wrote nothing either
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_killing_a_local_sweep_stops_its_jobs_and_their_records_say_why(tmp_path, launcher):
    """Waits on events, not deadlines: the jobs' checkpoints (while the sweep lives), then the jobs' ends. A job
    that kept training would run its 2000 epochs (minutes); the stop takes the watcher's poll and grace (~9 s)."""
    folder = tmp_path / "sweep"
    parent = subprocess.Popen(cli_command("-m", "seed=1,2", f"launcher={launcher}", "trainer.max_epochs=2000",
                                          "callbacks.progress_bar.refresh_rate=0", f"hydra.sweep.dir={folder}"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    while len(list(folder.glob("*/checkpoints/last.ckpt"))) < 2:  # both jobs past their first epoch
        if parent.poll() is not None:
            pytest.fail(f"the sweep ended (status {parent.returncode}) before its jobs trained")
        time.sleep(0.5)
    workers = {json.loads(p.read_text())["pid"] for p in folder.glob("*/result.json")}
    assert parent.pid not in workers and all(map(alive, workers))
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    killed = time.monotonic()
    while any(map(alive, workers)):
        assert time.monotonic() - killed < 600, "a job outlived its sweep by 10 minutes"  # a hang, not a load
        time.sleep(0.25)
    for path in folder.glob("*/result.json"):
        record = json.loads(path.read_text())
        assert record["status"] == "interrupted", record
        assert f"launching process (pid {parent.pid}) ended" in record["error"]
        assert (path.parent / "checkpoints" / "last.ckpt").is_file()  # the last completed epoch is kept
