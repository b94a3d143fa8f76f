"""How rpn_exp creates files: never through a symbolic link, never writable by other users.

A run writes into folders that someone else may have prepared (a shared ``outputs/``, a copied sweep folder). A
symbolic link planted there under a name rpn_exp writes (``result.json.<pid>.tmp``, ``.lock``,
``checkpoints/last.ckpt``) would otherwise make it truncate whatever the link points to, with the rights of whoever
runs it. So:

* :func:`open_new` creates a file afresh with ``O_CREAT | O_EXCL | O_NOFOLLOW``: a link in its place is removed
  (the link, not its target) and, if one reappears, the open fails instead of following it;
* :func:`planted_links` lists the links inside an output folder, which a run or sweep refuses to write into (the
  files Hydra writes before any rpn_exp code runs, ``.hydra/`` and the log, are covered that way);
* :func:`restrict_umask` keeps group and others from writing anything a run creates, whatever the shell's umask.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

#: The mode of every file rpn_exp creates (less what the umask takes away).
FILE_MODE = 0o644


def open_new(path: str | Path, mode: int = FILE_MODE) -> BinaryIO:
    """``path`` created afresh and opened for binary writing; a file or link already there is removed first.

    Raises ``FileExistsError`` if something takes its place between the removal and the creation: the open never
    follows a link.
    """
    path = Path(path)
    try:
        path.unlink()  # a link is removed itself; what it points to is untouched
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), mode)
    return os.fdopen(fd, "wb")


#: Folders inside an output folder that other tools own and rpn_exp never writes into: submitit keeps its own
#: links to the submission scripts there.
NOT_OURS = (".submitit",)


def planted_links(folder: str | Path, limit: int = 5) -> list[Path]:
    """Up to ``limit`` symbolic links inside ``folder`` (at any depth, links to folders not followed, the folders of
    :data:`NOT_OURS` left out), or [] when there are none or the folder does not exist yet."""
    found: list[Path] = []
    for root, folders, files in os.walk(folder, followlinks=False):
        folders[:] = [name for name in folders if name not in NOT_OURS]
        for name in (*folders, *files):
            if os.path.islink(os.path.join(root, name)):
                found.append(Path(root) / name)
                if len(found) >= limit:
                    return found
    return found


def links_problem(key: str, folder: str | Path) -> str | None:
    """One line saying why ``folder`` (given as ``key``) is refused for holding symbolic links, or None."""
    links = planted_links(folder)
    if not links:
        return None
    shown = ", ".join(f"{link} -> {os.readlink(link)}" for link in links)
    return (f"{key}={folder} holds symbolic links ({shown}); rpn_exp never writes through a link, and a link under "
            f"a name it writes could make it overwrite another file. Remove them, or give another {key}")


def restrict_umask() -> None:
    """Add group and other write permission to the process's umask: files it creates are at most 0644, folders
    at most 0755 (a umask of 000 in the shell would otherwise make checkpoints and records world-writable)."""
    current = os.umask(0o022)
    os.umask(current | 0o022)
