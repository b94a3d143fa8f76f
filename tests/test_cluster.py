"""Beyond one machine: a real one-node SLURM cluster runs a sweep through ``launcher=submitit_slurm``, and two sweep
processes share one Optuna study in a real PostgreSQL.

The test starts Debian's ``munge`` and ``slurm-wlm`` daemons itself (as root, on private ports, with a
``slurm.conf`` in a temporary folder; ``.ci/run`` installs the packages). The sweep's jobs run as SLURM jobs; the
long one is stopped by its time limit (SLURM sends SIGTERM, then SIGKILL after ``KillWait``) and is recorded
``interrupted`` with its checkpoints; the same sweep submitted again with ``skip_completed=true`` resumes it from
its ``last.ckpt`` to the end, and the summary is complete.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.slow
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="a SLURM cluster's daemons (slurmctld, slurmd) run as root")

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "sinfo", "scontrol")


def binary(name: str) -> str:
    found = shutil.which(name) or next((f"{d}/{name}" for d in ("/usr/sbin", "/usr/bin") if Path(d, name).exists()),
                                       None)
    if found is None:
        pytest.fail(f"{name} not found: apt-get install -y slurm-wlm munge (.ci/run installs them)")
    return found


def start_munge() -> None:
    """munged as the munge user, unless one already answers; a key is made if the package left none."""
    if subprocess.run(["munge", "-n"], capture_output=True).returncode == 0:
        return
    key = Path("/etc/munge/munge.key")
    if not key.exists():
        subprocess.run(["mungekey", "--create", "--keyfile", str(key)], check=True)
        shutil.chown(key, "munge", "munge")
    run_dir = Path("/run/munge")
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.chown(run_dir, "munge", "munge")
    subprocess.run(["runuser", "-u", "munge", "--", binary("munged"), "--force"], check=True)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """The environment (``SLURM_CONF``) of a running one-node cluster with a partition ``debug`` of 2 CPUs."""
    for name in DAEMONS:
        binary(name)
    root = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool", "log"):
        (root / sub).mkdir()
    host = socket.gethostname()
    conf = root / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=rpnexp", f"SlurmctldHost={host}", "SlurmUser=root", "SlurmdUser=root", "AuthType=auth/munge",
        "CredType=cred/munge", "MpiDefault=none", "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU", "SchedulerType=sched/backfill",
        "ReturnToService=2", "JobCompType=jobcomp/none", "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none", "InactiveLimit=0", "MinJobAge=300",
        "KillWait=10",  # seconds between the time limit's SIGTERM and SIGKILL
        "OverTimeLimit=0",
        f"StateSaveLocation={root / 'state'}", f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}", f"SlurmdPidFile={root / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}", f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
        f"SlurmctldPort={free_port()}", f"SlurmdPort={free_port()}",
        f"NodeName={host} CPUs={os.cpu_count()} RealMemory=2048 State=UNKNOWN",  # jobs ask for 1 GB
        "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP", ""]))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    start_munge()
    subprocess.run([binary("slurmctld"), "-f", str(conf)], check=True, env=env)
    subprocess.run([binary("slurmd"), "-f", str(conf)], check=True, env=env)
    try:
        for _ in range(60):
            state = subprocess.run([binary("sinfo"), "-h", "-o", "%t"], capture_output=True, text=True, env=env)
            if state.stdout.strip() == "idle":
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the SLURM node did not become idle: {state.stdout} {state.stderr}")
        yield {"env": env, "log": root / "log" / "slurmctld.log"}
    finally:
        subprocess.run([binary("scancel"), "--user=root"], env=env, capture_output=True)
        subprocess.run([binary("scontrol"), "shutdown"], env=env, capture_output=True)


def sweep(env, folder: Path, *extra: str, status: int = 0) -> subprocess.CompletedProcess:
    """Two digits jobs: one epoch, and one that trains until 90 s of training time have passed (Lightning's
    ``max_time``, kept across a resume) — longer than the 1-minute time limit of the first submission. ``status``:
    the sweep's exit status (3 when a job did not complete)."""
    command = [sys.executable, "-m", "rpn_exp", "-m", "launcher=submitit_slurm", "hydra.launcher.partition=debug",
               "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1", "trainer.max_epochs=1,100000",
               "+trainer.max_time=00:00:01:30", "callbacks.progress_bar.refresh_rate=0",
               f"hydra.sweep.dir={folder}", *extra]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=480)
    assert done.returncode == status, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def records(folder: Path) -> dict[str, dict]:
    return {path.parent.name: json.loads(path.read_text()) for path in sorted(folder.glob("*/result.json"))}


@needs_root
def test_a_sweep_runs_as_slurm_jobs_is_cut_by_a_time_limit_and_resumes_to_the_end(slurm, tmp_path):
    folder = tmp_path / "sweep"
    first = sweep(slurm["env"], folder, "hydra.launcher.timeout_min=1", status=3)  # one job cut by the time limit
    short, long = records(folder).values()
    assert short["status"] == "completed" and short["cluster_job"]  # ran as a SLURM job (its SLURM_JOB_ID)
    assert long["status"] == "interrupted" and "SIGTERM" in long["error"] and long["cluster_job"]
    assert long["last_checkpoint"] and Path(long["last_checkpoint"]).is_file()
    assert long["interrupted_checkpoint"] and Path(long["interrupted_checkpoint"]).is_file()
    assert f"Time limit exhausted for JobId={long['cluster_job']}(" in slurm["log"].read_text()
    assert "interrupted 001" in first.stdout
    interrupted_at = long["epochs"]

    second = sweep(slurm["env"], folder, "hydra.launcher.timeout_min=5", "skip_completed=true")
    assert "[sweep] resuming: 1 job(s) already completed (000); 1 to run again (001)" in second.stdout
    short_again, resumed = records(folder).values()
    assert short_again == short  # not run again
    assert resumed["status"] == "completed" and resumed["epochs"] > interrupted_at
    assert resumed["cluster_job"] != long["cluster_job"]
    assert resumed["resumed_from"] == long["last_checkpoint"]
    rows = (folder / "summary.csv").read_text().splitlines()
    assert len(rows) == 3 and all(",completed," in row for row in rows[1:])


# ------------------------------------------------------------------------- one Optuna study, several processes
def test_two_sweep_processes_share_one_optuna_study_in_postgresql(postgres, tmp_path):
    import optuna

    from rpn_exp.sweep.rows import summarize

    # the study is made once, before the workers start (two processes creating its tables at once would race)
    made = subprocess.run([str(Path(sys.executable).parent / "optuna"), "create-study", "--storage", postgres,
                           "--study-name", "shared", "--directions", "maximize", "minimize"],
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr[-2000:]
    folders = [tmp_path / "a", tmp_path / "b"]
    processes = [subprocess.Popen(
        [sys.executable, "-m", "rpn_exp", "-m", "hparams_search=optuna_pareto", "hydra.sweeper.n_trials=3",
         f"hydra.sweeper.storage='{postgres}'", "hydra.sweeper.study_name=shared", "debug=limit",
         "callbacks.progress_bar.refresh_rate=0", f"hydra.sweep.dir={folder}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for folder in folders]
    for process in processes:  # both at once: two searches asking one study for trials
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output[-3000:]
    study = optuna.load_study(study_name="shared", storage=postgres)
    trials = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(study.trials) == len(trials) == 6
    rows, _ = summarize(folders)  # the report over both folders: every trial is a recorded job
    assert len(rows) == 6 and {row["status"] for row in rows} == {"completed"}
    from_jobs = sorted((row["reconciliation"], int(row["r"])) for row in rows)
    assert from_jobs == sorted((t.params["reconciliation"], t.params["reconciliation.r"]) for t in trials)
    assert sorted(int(row["learnable_params"]) for row in rows) == sorted(int(t.values[1]) for t in trials)
