"""A sweep's rung standings in a PostgreSQL database (``pruner.storage``), for sweeps whose jobs run on several
machines: every node reaches the database where it may not share a filesystem whose ``flock`` holds across nodes.

The reports live in one table, :data:`TABLE` (sweep, epoch, job, the entry as JSON; a job's report of an epoch
once), made on first use. A session holds a transaction-level advisory lock (``pg_advisory_xact_lock``), the
database's counterpart of the file store's ``flock``: a job reads the standings, adds its report and is judged
before the next one may, and the lock ends with the transaction, also when its process is killed. The decisions
are still logged to the sweep folder's ``pruning.jsonl`` (:mod:`rpn_exp.run.rungs`), under that lock.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

from rpn_exp.run.rungs import Entry

#: The table of every sweep's reports.
TABLE = "rpn_exp_rungs"
#: The advisory lock every session takes (one lock for all sweeps: reports are a few per epoch).
LOCK_KEY = 7_236_839_521_337_511_001


class DatabaseReports:
    """The reports of one sweep, read and added inside a locked session (:func:`database_session`)."""

    def __init__(self, connection, sweep: str):
        self.connection, self.sweep = connection, sweep

    def read(self) -> list[tuple[int, Entry]]:
        """[(epoch, Entry)] in the order they were added."""
        from sqlalchemy import text

        rows = self.connection.execute(text(f"SELECT epoch, entry FROM {TABLE} WHERE sweep = :sweep ORDER BY id"),
                                       {"sweep": self.sweep})
        return [(int(epoch), Entry(**json.loads(entry))) for epoch, entry in rows]

    def add(self, reports: list[tuple[int, Entry]], new: list[tuple[int, Entry]]) -> None:
        """Add the ``new`` reports (``reports``, those read before, stay as they are)."""
        from sqlalchemy import text

        self.connection.execute(
            text(f"INSERT INTO {TABLE} (sweep, epoch, job, entry) VALUES (:sweep, :epoch, :job, :entry)"),
            [{"sweep": self.sweep, "epoch": epoch, "job": entry.job, "entry": json.dumps(entry.as_dict())}
             for epoch, entry in new])


@contextmanager
def database_session(url: str, sweep: str) -> Iterator[DatabaseReports]:
    """The reports of ``sweep`` (its folder's absolute path) in the database at ``url``, with the store's lock held
    until the block ends; what the block added is committed then (or nothing, if it raised)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
            connection.execute(text(
                f"CREATE TABLE IF NOT EXISTS {TABLE} (id BIGSERIAL, sweep TEXT NOT NULL, epoch INTEGER NOT NULL, "
                "job TEXT NOT NULL, entry TEXT NOT NULL, PRIMARY KEY (sweep, epoch, job))"))
            yield DatabaseReports(connection, sweep)
    finally:
        engine.dispose()
