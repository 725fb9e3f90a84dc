"""The server's checkpoint timer: the audit chain's head goes to the log on time, not only at the next entry.

Without it, a quiet server logs nothing after its last entry, and the tail written since the last
checkpoint could be cut off unseen until somebody writes again. Every ``audit_checkpoint_minutes``
each server worker reads the head (one short read, the connection returned at once) and logs it if
it moved past the last checkpoint that worker logged.

One timer per worker rather than a lease: a lease would need a write every interval (on SQLite, the
database-wide write lock) to save a few identical log lines, and a line a worker repeats is harmless —
``audit verify --checkpoint`` takes the last one in the file.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine, select

from app.audit import service as audit
from app.audit.models import AuditEntry

log = logging.getLogger("helpline.audit")


class CheckpointTimer:
    """A daemon thread logging the head every ``interval`` seconds when it moved; ``stop`` ends it."""

    def __init__(self, *, engine: Engine, interval: float) -> None:
        self.engine, self.interval = engine, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="helpline-audit-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def run_once(self) -> bool:
        """Log the head if it moved; whether a checkpoint was logged."""
        with self.engine.connect() as conn:  # closed (rolled back) right after the one read
            row = conn.execute(select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)).first()
        if row is None:
            return False
        return audit.log_checkpoint_if_moved(int(row[0]), str(row[1]))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_once()
            except Exception:
                log.exception("audit checkpoint not logged; retried in %s s", self.interval)
