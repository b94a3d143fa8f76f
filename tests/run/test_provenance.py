"""Provenance of a result: the git commit and whether the tree was dirty, package versions, the device."""

import shutil
import subprocess
from importlib import metadata

import pytest

from rpn_exp.run.provenance import PACKAGES, git_state, provenance, versions


def git(folder, *args):
    subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_the_commit_and_a_dirty_tree_are_recorded(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    git(tmp_path, "add", "code.py")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert git_state(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "notes.txt").write_text("untracked files do not make it dirty")
    assert git_state(tmp_path)["dirty"] is False
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_state(tmp_path) == {"commit": head, "dirty": True}


def test_outside_a_checkout_the_commit_is_unknown(tmp_path):
    assert git_state(tmp_path) == {"commit": None, "dirty": None}


def test_versions_of_python_and_the_stack():
    found = versions()
    assert set(found) == {"python", *PACKAGES}
    assert found["torch"] == metadata.version("torch") and found["hydra-core"] == metadata.version("hydra-core")
    assert found["python"].count(".") == 2


def test_the_device_of_a_cpu_run():
    assert provenance("cpu")["device"].startswith("cpu: ")
