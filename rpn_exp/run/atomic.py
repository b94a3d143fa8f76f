"""Files written whole or not at all: the one way a run writes its records and checkpoints."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from rpn_exp.files import open_new


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """``write(handle)`` into ``<path>.<pid>.tmp``, flushed to disk, then renamed over ``path``; returns the path.

    A reader never sees a partial file, and no link is followed: the temporary file is created afresh
    (:func:`rpn_exp.files.open_new`) and the rename replaces a link at ``path`` rather than writing through it.
    If writing fails (a full disk, a kill), the temporary file is removed and the error raised: ``path`` keeps its
    last good content. The temporary name carries the process id, so two processes writing one file at once (two
    reports into one folder) never write into or rename each other's copy: the file ends whole, as the last rename
    left it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open_new(tmp) as handle:  # never through a link planted under the temporary name
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
