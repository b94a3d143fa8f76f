"""Who may write a job folder, and for how long: one process per folder, and no job that outlives its sweep.

* A job folder is owned by one process at a time: an advisory lock (``flock``) on ``<job>/.lock``, taken before the
  job reads or clears anything there and held until it ends. The kernel drops it when the process dies, even by
  SIGKILL, so a stale lock never blocks a resume. A second process given the same folder (a sweep resumed while an
  earlier one still runs) is refused with the owner's pid and touches nothing.
* A job that runs in a worker process of a local launcher (joblib's loky workers, submitit_local, whose job runs
  under a controller process that outlives its sweep by design) watches its launching process: when that is gone
  (killed), the job stops as a SIGTERM stops it (its record says why, its last checkpoint stays) and the worker
  exits, so nothing keeps training or writing after its sweep.
"""

from __future__ import annotations

import fcntl
import os
import signal
import threading
import time
from pathlib import Path

from rpn_exp.files import FILE_MODE, links_problem

LOCK_FILE = ".lock"
#: How often a worker checks its launching process, and how long it gives its job to record the stop.
POLL_S, GRACE_S = 0.5, 8.0

_held: dict[Path, int] = {}
#: Set when the launching process of this worker ended: the pid it had (read by the failure policy).
orphaned_from: int | None = None


class FolderInUse(RuntimeError):
    """Another living process owns the job folder (or it holds a symbolic link a run would write through)."""


def own_folder(out: Path) -> None:
    """Take the job folder ``out`` for this process (again: nothing to do). Raises :class:`FolderInUse` naming the
    owner when another process holds it."""
    out = Path(out)
    if out in _held:
        return
    out.mkdir(parents=True, exist_ok=True)
    problem = links_problem("the job folder", out)
    if problem:
        raise FolderInUse(problem)
    fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise FolderInUse(f"{out} is in use by another process (pid {owner}) running this job; wait for it to end "
                          f"(or stop it), then run again") from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
    except OSError:  # a full disk: the lock holds without the pid written
        pass
    _held[out] = fd


def folder_owner(out: Path) -> str | None:
    """The pid of the living process that owns the job folder ``out`` (as its lock file says), or None; takes
    nothing and creates nothing."""
    try:
        fd = os.open(Path(out) / LOCK_FILE, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:  # no lock file (or a link in its place, refused elsewhere): nobody owns it
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return os.read(fd, 32).decode(errors="replace").strip() or "unknown"
    finally:
        os.close(fd)  # drops the shared lock if it was taken


def busy_problem(key: str, folder: Path) -> str | None:
    """One line naming the job folders in or at ``folder`` that another living process owns, or None."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    parent = str(os.getppid())  # a DDP rank that Lightning started runs in its rank 0's folder
    busy = [(job, pid) for job in (folder, *sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()))
            if (pid := folder_owner(job)) and pid != parent]
    if not busy:
        return None
    shown = ", ".join(f"in use by another process (pid {pid}) running {job.name}" for job, pid in busy[:3])
    return (f"{key}={folder} is {shown}; nothing was written. Wait for it to end (or stop it), or give another "
            f"{key}")


def release_folder(out: Path) -> None:
    """Give the job folder ``out`` up (nothing if this process does not hold it)."""
    fd = _held.pop(Path(out), None)
    if fd is not None:
        os.close(fd)


def watch_launcher(local_worker: bool) -> None:
    """In a worker process of a local launcher, start (once) the thread that stops this process when its launching
    process is gone (module docstring). Does nothing elsewhere."""
    global _watching
    if not local_worker or _watching:
        return
    _watching = True
    hops = 2 if os.environ.get("SUBMITIT_EXECUTOR") == "local" else 1  # a submitit job's parent is its controller
    threading.Thread(target=_watch, args=(hops, _ancestor(hops)), name="rpn_exp-launcher-watch", daemon=True).start()


_watching = False


def _ancestor(hops: int) -> int:
    """The pid ``hops`` generations above this process (1: its parent), 1 once the chain is broken."""
    pid = os.getpid()
    for _ in range(hops):
        pid = os.getppid() if pid == os.getpid() else _parent(pid)
    return pid


def _parent(pid: int) -> int:
    try:  # /proc/<pid>/stat: "pid (name) state ppid ..."; the name may hold spaces and parentheses
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 1


def _watch(hops: int, launcher: int) -> None:
    """When the launching process ``launcher`` is gone (the process between, a submitit controller, is re-parented
    when it dies), stop this job as SIGTERM stops it."""
    global orphaned_from
    while _ancestor(hops) == launcher:
        time.sleep(POLL_S)
    orphaned_from = launcher
    os.kill(os.getpid(), signal.SIGTERM)  # the job stops at its next step and records it (Lightning's handler)
    time.sleep(GRACE_S)
    os._exit(143)  # whatever still runs (a job between steps, the worker's own loop) ends here
