"""Leases: which runner works on which run, when several runners share one study directory.

Several ``untwine study run`` processes (two terminals, or cluster jobs on one file
system) may work on one study: each run is trained by the runner that holds its lease in
the results database (:func:`untwine.study.results.claim`).  :class:`Leases` holds one
runner's leases; a background thread renews them every ``LEASE_SECONDS / 4``.  A runner
that dies stops renewing, and its runs are taken over once their leases expire.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from pathlib import Path

from untwine.study import results as db

#: how long a runner's claim on a run lasts without renewal (it renews every quarter of it)
LEASE_SECONDS = 60.0


class Leases:
    """This runner's leases on runs in the results database ``db_file``, renewed while it works on them."""

    def __init__(self, db_file: Path) -> None:
        self.db_file = db_file
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.held: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_loop, name="untwine-study-leases", daemon=True)
        self._thread.start()

    def _call(self, fn, *args):
        conn = db.connect(self.db_file)
        try:
            return fn(conn, *args)
        finally:
            conn.close()

    def claim(self, run_id: str) -> bool:
        """Whether this runner now holds ``run_id`` (False: another live runner does)."""
        ok = self._call(db.claim, run_id, self.owner, LEASE_SECONDS)
        if ok:
            with self._lock:
                self.held.add(run_id)
        return ok

    def release(self, run_id: str) -> None:
        with self._lock:
            self.held.discard(run_id)
        self._call(db.release, run_id, self.owner)

    def _renew_loop(self) -> None:
        while not self._stop.wait(LEASE_SECONDS / 4):
            with self._lock:
                held = list(self.held)
            try:
                self._call(db.renew, held, self.owner, LEASE_SECONDS)
            except Exception:  # noqa: BLE001 - a missed renewal is retried; the lease has slack
                pass

    def close(self) -> None:
        """Stop renewing and release every lease still held."""
        self._stop.set()
        self._thread.join(timeout=5)
        for rid in list(self.held):
            try:
                self.release(rid)
            except Exception:  # noqa: BLE001 - an expiring lease frees it anyway
                pass
