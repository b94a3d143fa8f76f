"""Files are created without following symbolic links and without write permission for others
(``rpn_exp.files``): links planted in an output folder are refused before anything is written there, and a run
refused for its ``task_name`` writes nothing outside ``paths.log_dir``."""

import os
import stat
import subprocess

import pytest
import torch

from rpn_exp.files import open_new, planted_links
from rpn_exp.run.checkpointing import atomic_torch_save
from rpn_exp.run.ownership import FolderInUse, own_folder
from rpn_exp.run.record import read_record, reserve_space, write_record
from rpn_exp.sweep.summary import write_summary
from tests.conftest import cli_command


@pytest.fixture
def victim(tmp_path):
    """A file outside the output folder that a planted link points to."""
    path = tmp_path / "victim.txt"
    path.write_text("precious")
    return path


def plant(link, target):
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    return link


def test_open_new_replaces_a_link_and_never_writes_through_it(tmp_path, victim):
    with open_new(plant(tmp_path / "out" / "file", victim)) as handle:
        handle.write(b"new")
    assert victim.read_text() == "precious" and not (tmp_path / "out" / "file").is_symlink()
    assert (tmp_path / "out" / "file").read_bytes() == b"new"


@pytest.mark.parametrize("name, write", [
    ("result.json", lambda folder: write_record(folder, {"status": "running"})),
    ("checkpoints/last.ckpt", lambda folder: atomic_torch_save({"w": torch.zeros(2)}, folder / "checkpoints" / "last.ckpt")),
    ("summary.md", lambda folder: write_summary(folder, [])),
    ("pareto.png", lambda folder: write_summary(folder, [])),
    (".outcome_reserve", reserve_space),
])
def test_records_checkpoints_summaries_and_the_reserve_never_follow_a_link(tmp_path, victim, name, write):
    folder = tmp_path / "out"
    plant(folder / name, victim)
    plant(folder / f"{name}.{os.getpid()}.tmp", victim)  # the temporary name of an atomic write too
    write(folder)
    assert victim.read_text() == "precious" and not (folder / name).is_symlink()
    assert (folder / name).stat().st_size > 0


def test_a_job_folder_holding_a_link_is_refused_before_its_lock_is_taken(tmp_path, victim):
    plant(tmp_path / "job" / ".lock", victim)
    with pytest.raises(FolderInUse, match=r"holds symbolic links .*\.lock -> .*victim.txt"):
        own_folder(tmp_path / "job")
    assert victim.read_text() == "precious"


def test_planted_links_are_found_at_any_depth_without_following_linked_folders(tmp_path):
    plant(tmp_path / "a" / "b" / "checkpoints", tmp_path)  # a link to a folder that contains it
    plant(tmp_path / ".submitit" / ".submission_file_x.sh", tmp_path / ".submitit" / "1.sh")  # submitit's own
    assert planted_links(tmp_path) == [tmp_path / "a" / "b" / "checkpoints"]
    assert planted_links(tmp_path / "missing") == []


@pytest.fixture(scope="module")
def refused_runs(tmp_path_factory):
    """Three command lines run at once: a run folder with a planted link, a task_name that leads out of the log
    folder, and a short run under umask 000."""
    root = tmp_path_factory.mktemp("cli")
    victim = root / "victim.txt"
    victim.write_text("precious")
    plant(root / "linked" / "train.log", victim)
    commands = {
        "link": (cli_command(f"hydra.run.dir={root / 'linked'}", "dry_run=true"), None),
        "escape": (cli_command(f"paths.log_dir={root / 'logs' / 'deep'}", "task_name=../../escape", "dry_run=true"),
                   None),
        "umask": (cli_command(f"hydra.run.dir={root / 'open'}", "debug=limit", "trainer.max_epochs=1",
                              "callbacks.progress_bar.refresh_rate=0"), lambda: os.umask(0)),
    }
    started = {name: subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      preexec_fn=umask) for name, (command, umask) in commands.items()}
    done = {name: (process.wait(timeout=300), *process.communicate()) for name, process in started.items()}
    return root, victim, done


def test_a_run_folder_with_a_planted_link_is_refused_before_hydra_writes_into_it(refused_runs):
    root, victim, done = refused_runs
    code, _, err = done["link"]
    assert code == 2 and "holds symbolic links" in err and "train.log" in err
    assert len(err.strip().splitlines()) == 1
    assert victim.read_text() == "precious" and not (root / "linked" / ".hydra").exists()


def test_a_task_name_leading_out_of_the_log_folder_creates_nothing(refused_runs):
    root, _, done = refused_runs
    code, _, err = done["escape"]
    assert code == 2 and "task_name='../../escape' is invalid" in err
    assert not (root / "escape").exists() and not (root / "logs").exists()


def test_nothing_a_run_writes_is_writable_by_others_whatever_the_umask(refused_runs):
    root, _, done = refused_runs
    code, _, err = done["umask"]
    assert code == 0, err[-2000:]
    assert read_record(root / "open")["status"] == "completed"
    written = [p for p in (root / "open").rglob("*") if not p.is_symlink()]
    assert any(p.suffix == ".ckpt" for p in written) and any(p.name == "result.json" for p in written)
    loose = [p for p in written if p.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH)]
    assert not loose, loose
