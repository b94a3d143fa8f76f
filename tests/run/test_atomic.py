"""Files written whole or not at all, also when two processes write one file at once."""

import subprocess
import sys
import time

import pytest

from rpn_exp.run.atomic import atomic_write

WRITER = """
import sys, time
from pathlib import Path
from rpn_exp.run.atomic import atomic_write
path, mark, ready, go = Path(sys.argv[1]), sys.argv[2].encode(), Path(sys.argv[3]), Path(sys.argv[4])
ready.touch()
while not go.exists():  # both writers start at the same moment
    time.sleep(0.01)
for _ in range(200):
    atomic_write(path, lambda handle: handle.write(mark * 2**18))
"""


def test_a_write_replaces_the_file_whole(tmp_path):
    path = atomic_write(tmp_path / "sub" / "file.txt", lambda handle: handle.write(b"first"))
    atomic_write(path, lambda handle: handle.write(b"second"))
    assert path.read_bytes() == b"second" and sorted(p.name for p in path.parent.iterdir()) == ["file.txt"]


def test_a_failed_write_keeps_the_last_good_content(tmp_path):
    path = atomic_write(tmp_path / "file.txt", lambda handle: handle.write(b"good"))

    def fail(handle):
        handle.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write(path, fail)
    assert path.read_bytes() == b"good" and [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def test_two_processes_writing_one_file_at_once_both_succeed_and_leave_it_whole(tmp_path):
    path, go = tmp_path / "summary.md", tmp_path / "go"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), mark, str(tmp_path / f"ready{mark}"), str(go)],
                                stderr=subprocess.PIPE, text=True) for mark in "ab"]
    while len(list(tmp_path.glob("ready*"))) < 2 and all(w.poll() is None for w in writers):
        time.sleep(0.05)
    go.touch()
    errors = [w.communicate(timeout=300)[1] for w in writers]
    assert [w.returncode for w in writers] == [0, 0], [e[-2000:] for e in errors]
    content = path.read_bytes()
    assert content in (b"a" * 2**18, b"b" * 2**18)  # one writer's whole file, never a mix or a truncation
    assert not list(tmp_path.glob("*.tmp"))
