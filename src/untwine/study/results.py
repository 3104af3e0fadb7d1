"""The results database of a study: one SQLite file, ``STUDY_DIR/results.sqlite``.

Schema (query it with any SQLite client)::

    runs(run_id PRIMARY KEY, config_id, model, dataset, seed, hparams JSON, steps,
         batch_size, status, attempts, error, run_dir, train_seconds, eval_seconds,
         wall_seconds, updated)
    metrics(run_id, name, value, PRIMARY KEY (run_id, name))
    meta(key PRIMARY KEY, value)
    VIEW results   -- one row per run: the runs columns, one column per hyper-parameter
                   -- (json_extract of hparams) and one column per metric name

``status`` is ``pending``, ``running``, ``done`` or ``failed`` (``error`` holds the
failure, one line).  Hyper-parameter columns are named after the
hyper-parameter (``hp_NAME`` where that clashes with a runs column); metric
columns after the metric (``m_NAME`` on a clash).

Concurrency: every process opens its own connection; the file is in WAL mode
with a busy timeout, writes are short ``BEGIN IMMEDIATE`` transactions retried on
``database is locked``, so several worker processes may record runs at once.
(WAL needs a local file system: on a cluster without one, the study's parent
process records results, see :mod:`untwine.study.executors`.)
"""

from __future__ import annotations

import csv
import json
import math
import random
import re
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from untwine.errors import UntwineError

DB_FILE = "results.sqlite"
VIEW = "results"
STATUSES = ("pending", "running", "done", "failed")
RUN_COLUMNS = (
    "run_id",
    "config_id",
    "model",
    "dataset",
    "seed",
    "hparams",
    "steps",
    "batch_size",
    "status",
    "attempts",
    "error",
    "run_dir",
    "train_seconds",
    "eval_seconds",
    "wall_seconds",
    "updated",
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    config_id TEXT NOT NULL,
    model TEXT NOT NULL,
    dataset TEXT NOT NULL,
    seed INTEGER NOT NULL,
    hparams TEXT NOT NULL DEFAULT '{}',
    steps INTEGER,
    batch_size INTEGER,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    run_dir TEXT,
    train_seconds REAL,
    eval_seconds REAL,
    wall_seconds REAL,
    updated REAL
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (run_id, name)
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT
);
CREATE TABLE IF NOT EXISTS leases (
    run_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires REAL NOT NULL
);
"""


def db_path(study_dir) -> Path:
    return Path(study_dir) / DB_FILE


def connect(path, *, timeout: float = 60.0, create: bool = True, check: bool = False) -> sqlite3.Connection:
    """A connection to the results database at ``path`` (WAL mode, busy timeout, schema ensured).

    A file that is not an SQLite database, or (with ``check``, SQLite's ``quick_check``) one
    whose pages are damaged, is one :class:`UntwineError` line naming it.
    """
    p = Path(path)
    if not create and not p.is_file():
        raise UntwineError(f"no results database at {p} (run `untwine study run` first)")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(p), timeout=timeout, isolation_level=None)  # autocommit; explicit BEGINs
    except (OSError, sqlite3.OperationalError) as exc:
        raise UntwineError(f"{p}: cannot open the results database ({exc})") from None
    conn.row_factory = sqlite3.Row

    def setup():
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        if check:
            result = conn.execute("PRAGMA quick_check").fetchone()[0]
            if result != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {result}")
        if create:
            conn.executescript(SCHEMA)

    try:
        _retry(setup)
    except sqlite3.DatabaseError as exc:
        conn.close()
        if isinstance(exc, sqlite3.OperationalError) and _locked(exc):
            raise
        raise UntwineError(
            f"{p} is not a readable results database ({str(exc).splitlines()[0]}); move it away and re-run "
            "`untwine study run` to record the runs again (finished runs are read back from their run directories, not retrained)"
        ) from None
    return conn


def _locked(exc: sqlite3.OperationalError) -> bool:
    msg = str(exc).lower()
    return "locked" in msg or "busy" in msg


def _retry(fn: Callable[[], Any], attempts: int = 50) -> Any:
    delay = 0.02
    for i in range(attempts):
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not _locked(exc) or i == attempts - 1:
                raise
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 1.0)
    return None  # pragma: no cover


@contextmanager
def _transaction(conn: sqlite3.Connection):
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def write(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], Any]) -> Any:
    """Run ``fn(conn)`` in one short write transaction, retried while the database is locked."""

    def once():
        with _transaction(conn):
            return fn(conn)

    return _retry(once)


# -- writers -----------------------------------------------------------------------------------
def _clean(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def register_runs(conn: sqlite3.Connection, runs: Iterable[Mapping[str, Any]]) -> None:
    """Insert each run (a :meth:`RunSpec.to_dict`-like mapping plus ``run_dir``) as pending if absent;
    refresh the configuration columns of runs already present (e.g. ``steps`` raised)."""
    rows = [
        (
            r["run_id"],
            r["config_id"],
            r["model"],
            r["dataset"],
            int(r["seed"]),
            json.dumps(r.get("hparams") or {}, sort_keys=True),
            int(r["train"]["steps"]),
            int(r["train"]["batch_size"]),
            str(r.get("run_dir") or ""),
            time.time(),
        )
        for r in runs
    ]

    def fn(c):
        c.executemany(
            "INSERT INTO runs (run_id, config_id, model, dataset, seed, hparams, steps, batch_size, run_dir, updated) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(run_id) DO UPDATE SET config_id=excluded.config_id, model=excluded.model, "
            "dataset=excluded.dataset, seed=excluded.seed, hparams=excluded.hparams, "
            "steps=excluded.steps, batch_size=excluded.batch_size, run_dir=excluded.run_dir",
            rows,
        )

    write(conn, fn)


def set_status(conn: sqlite3.Connection, run_id: str, status: str, *, error: str | None = None, attempt: bool = False, **fields) -> None:
    """Set a run's status (and error, timings ...); ``attempt=True`` counts one more attempt."""
    if status not in STATUSES:
        raise UntwineError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    sets = ["status = ?", "error = ?", "updated = ?"]
    vals: list[Any] = [status, error, time.time()]
    for k, v in fields.items():
        if k not in ("train_seconds", "eval_seconds", "wall_seconds", "steps"):
            raise UntwineError(f"set_status: unknown field {k!r}")
        sets.append(f"{k} = ?")
        vals.append(v)
    if attempt:
        sets.append("attempts = attempts + 1")

    def fn(c):
        cur = c.execute(f"UPDATE runs SET {', '.join(sets)} WHERE run_id = ?", (*vals, run_id))
        if cur.rowcount == 0:
            raise UntwineError(f"results database: no run {run_id!r}")

    write(conn, fn)


def record_metrics(conn: sqlite3.Connection, run_id: str, scores: Mapping[str, Any], *, replace: bool = True) -> None:
    """Store ``scores`` (name -> value; NaN/inf as NULL) for ``run_id``.

    ``replace=True`` first drops the run's other stored metrics (except ``udr``,
    which belongs to the whole configuration and is recomputed separately).
    """
    rows = [(run_id, str(k), _clean(v)) for k, v in scores.items()]

    def fn(c):
        if replace:
            c.execute("DELETE FROM metrics WHERE run_id = ? AND name != 'udr'", (run_id,))
        c.executemany(
            "INSERT INTO metrics (run_id, name, value) VALUES (?, ?, ?) "
            "ON CONFLICT(run_id, name) DO UPDATE SET value = excluded.value",
            rows,
        )

    write(conn, fn)


def finish_run(conn: sqlite3.Connection, run_id: str, scores: Mapping[str, Any], **timings) -> None:
    """Record a finished run's metrics and mark it done, in one transaction."""
    rows = [(run_id, str(k), _clean(v)) for k, v in scores.items()]
    sets = ["status = 'done'", "error = NULL", "updated = ?"]
    vals: list[Any] = [time.time()]
    for k, v in timings.items():
        if k not in ("train_seconds", "eval_seconds", "wall_seconds", "steps"):
            raise UntwineError(f"finish_run: unknown field {k!r}")
        sets.append(f"{k} = ?")
        vals.append(v)

    def fn(c):
        c.execute("DELETE FROM metrics WHERE run_id = ? AND name != 'udr'", (run_id,))
        c.executemany("INSERT INTO metrics (run_id, name, value) VALUES (?, ?, ?)", rows)
        c.execute(f"UPDATE runs SET {', '.join(sets)} WHERE run_id = ?", (*vals, run_id))

    write(conn, fn)


def count_attempt(conn: sqlite3.Connection, run_id: str) -> None:
    """Count one more attempt of ``run_id`` (its status unchanged: the worker sets it)."""
    write(conn, lambda c: c.execute("UPDATE runs SET attempts = attempts + 1 WHERE run_id = ?", (run_id,)))


def get_meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else row[0]


def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    write(conn, lambda c: c.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value)))


# -- readers ------------------------------------------------------------------------------------
# -- leases: which runner holds which run -------------------------------------------------------
def claim(conn: sqlite3.Connection, run_id: str, owner: str, seconds: float) -> bool:
    """Claim ``run_id`` for ``owner`` for ``seconds``; True when it is now ``owner``'s.

    A run is free when nobody holds it or its holder's lease has expired (the holder died
    without releasing it); a holder may claim its own run again (renewing it).  Atomic
    across processes and machines that share the database.
    """

    def fn(c):
        now = time.time()
        row = c.execute("SELECT owner, expires FROM leases WHERE run_id = ?", (run_id,)).fetchone()
        if row is not None and row[0] != owner and row[1] > now:
            return False
        c.execute(
            "INSERT INTO leases (run_id, owner, expires) VALUES (?, ?, ?) "
            "ON CONFLICT(run_id) DO UPDATE SET owner = excluded.owner, expires = excluded.expires",
            (run_id, owner, now + float(seconds)),
        )
        return True

    return bool(write(conn, fn))


def renew(conn: sqlite3.Connection, run_ids: Iterable[str], owner: str, seconds: float) -> None:
    """Extend ``owner``'s leases on ``run_ids`` by ``seconds`` from now."""
    ids = list(run_ids)
    if ids:
        expires = time.time() + float(seconds)
        write(conn, lambda c: c.executemany(
            "UPDATE leases SET expires = ? WHERE run_id = ? AND owner = ?", [(expires, r, owner) for r in ids]
        ))


def release(conn: sqlite3.Connection, run_id: str, owner: str) -> None:
    """Give up ``owner``'s lease on ``run_id`` (nothing when another runner holds it)."""
    write(conn, lambda c: c.execute("DELETE FROM leases WHERE run_id = ? AND owner = ?", (run_id, owner)))


def run_rows(conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    """Every run row by id (hparams decoded)."""
    out = {}
    for row in conn.execute("SELECT * FROM runs ORDER BY run_id"):
        d = dict(row)
        d["hparams"] = json.loads(d["hparams"] or "{}")
        out[d["run_id"]] = d
    return out


def metric_values(conn: sqlite3.Connection, *, name: str | None = None,
                  run_ids: Iterable[str] | None = None) -> list[tuple[str, str, float | None]]:
    """Stored metrics as ``(run_id, name, value)`` rows (value None where undefined), of every
    metric or only ``name``, of every run or only ``run_ids``."""
    where, params = [], []
    if name is not None:
        where.append("name = ?")
        params.append(name)
    if run_ids is not None:
        ids = list(run_ids)
        where.append(f"run_id IN ({','.join('?' * len(ids))})")
        params += ids
    sql = "SELECT run_id, name, value FROM metrics" + (f" WHERE {' AND '.join(where)}" if where else "")
    return [tuple(r) for r in conn.execute(sql, params)]


def metric_names(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT DISTINCT name FROM metrics ORDER BY name")]


def hparam_names(conn: sqlite3.Connection) -> list[str]:
    names: set[str] = set()
    for (h,) in conn.execute("SELECT hparams FROM runs"):
        names.update(json.loads(h or "{}"))
    return sorted(names)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def view_columns(conn: sqlite3.Connection) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """``(run columns, hparam -> column name, metric -> column name)`` of the results view."""
    base = [c for c in RUN_COLUMNS if c != "hparams"] + ["hparams"]
    taken = set(base)
    hp_cols: dict[str, str] = {}
    for h in hparam_names(conn):
        col = h if h not in taken else f"hp_{h}"
        hp_cols[h] = col
        taken.add(col)
    m_cols: dict[str, str] = {}
    for m in metric_names(conn):
        col = m if m not in taken else f"m_{m}"
        m_cols[m] = col
        taken.add(col)
    return base, hp_cols, m_cols


def refresh_view(conn: sqlite3.Connection) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """(Re)create the wide ``results`` view for the hyper-parameters and metrics present."""
    base, hp_cols, m_cols = view_columns(conn)
    parts = [f"r.{_ident(c)}" for c in base]
    parts += [f"json_extract(r.hparams, {_sql_str('$.' + _json_key(h))}) AS {_ident(col)}" for h, col in hp_cols.items()]
    parts += [
        f"(SELECT m.value FROM metrics m WHERE m.run_id = r.run_id AND m.name = {_sql_str(name)}) AS {_ident(col)}"
        for name, col in m_cols.items()
    ]
    sql = f"CREATE VIEW {VIEW} AS SELECT {', '.join(parts)} FROM runs r"
    current = conn.execute("SELECT sql FROM sqlite_master WHERE type='view' AND name=?", (VIEW,)).fetchone()
    if current is None or current[0] != sql:

        def fn(c):
            c.execute(f"DROP VIEW IF EXISTS {VIEW}")
            c.execute(sql)

        write(conn, fn)
    return base, hp_cols, m_cols


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _json_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k) else '"' + k.replace('"', '\\"') + '"'


def query(
    study_dir,
    *,
    where: str | None = None,
    sort: str | None = None,
    descending: bool = True,
    status: str | None = None,
) -> tuple[list[str], list[dict[str, Any]], dict[str, Any]]:
    """Rows of the results view of ``study_dir`` filtered by the SQL ``where`` and sorted by column ``sort``.

    Returns ``(columns, rows, info)`` where ``info`` holds ``hparams`` and ``metrics``
    (name -> column).  A bad ``where`` or an unknown ``sort`` column is one-line error.
    """
    conn = connect(db_path(study_dir), create=False, check=True)
    try:
        base, hp_cols, m_cols = refresh_view(conn)
        columns = base + list(hp_cols.values()) + list(m_cols.values())
        conn.execute("PRAGMA query_only = ON")
        sql = f"SELECT * FROM {VIEW}"
        conds, params = [], []
        if where and where.strip():
            conds.append(f"({where.strip()})")
        if status:
            conds.append("status = ?")
            params.append(status)
        if conds:
            sql += " WHERE " + " AND ".join(conds)
        if sort:
            col = m_cols.get(sort) or hp_cols.get(sort) or (sort if sort in columns else None)
            if col is None:
                raise UntwineError(f"--sort: no column {sort!r}; columns: {', '.join(columns)}")
            # NULLs last whichever the direction
            sql += f" ORDER BY {_ident(col)} IS NULL, {_ident(col)} {'DESC' if descending else 'ASC'}, run_id"
        else:
            sql += " ORDER BY run_id"
        try:
            rows = [dict(r) for r in conn.execute(sql, params)]
        except sqlite3.Error as exc:
            raise UntwineError(f"--where {where!r}: {exc} (columns: {', '.join(columns)})") from None
    finally:
        conn.close()
    return columns, rows, {"hparams": hp_cols, "metrics": m_cols}


def write_csv(path, columns: list[str], rows: list[Mapping[str, Any]]) -> Path:
    """Write ``rows`` with ``columns`` to a CSV file."""
    p = Path(path)
    if p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        for r in rows:
            w.writerow(["" if r.get(c) is None else r.get(c) for c in columns])
    return p
