"""Run untrusted SQL in one reused child process with a hard time and memory limit.

SQLite's progress handler only fires between VDBE opcodes, so one long C call (a
`printf('%.*c', 1e9, 'x')`, a pathological LIKE) runs to its end whatever the limit. The
child therefore gets a hard deadline: the parent waits `time_limit + GRACE_S` for a reply
and otherwise kills it (SIGKILL) and starts a fresh one for the next query. The child caps
its own address space (RLIMIT_AS) so a query that allocates runs out of memory, not the
machine, and works in an empty temporary directory it cannot leave files in (the
authorizer denies ATTACH, VACUUM INTO and every write; temp tables and sorts stay in memory).

This file imports only the standard library: the child runs it by path (`python -I`), so it
starts in ~tens of ms without importing tunelab, torch or the user's site-packages.
"""

from __future__ import annotations

import atexit
import os
import pickle
import select
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time

TIME_LIMIT_S = 1.0
GRACE_S = 0.3
"""How long past its limit a query may take before the child is killed (the progress
handler usually ends it first; this covers the time to notice and kill)."""
MAX_ROWS = 1000
MAX_LENGTH = 100_000
"""Largest string or blob a query may build (randomblob(1e9) must not eat memory)."""
MAX_RESULT_BYTES = 5_000_000
"""Largest result (summed string/blob sizes) sent back: 1000 rows of 100 kB would be 100 MB."""
MEMORY_LIMIT = 256 * 2**20
"""The child's address-space cap (RLIMIT_AS); the idle child maps ~30 MB."""

WRITES = {
    sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE,
    sqlite3.SQLITE_CREATE_TABLE, sqlite3.SQLITE_CREATE_TEMP_TABLE, sqlite3.SQLITE_CREATE_INDEX,
    sqlite3.SQLITE_CREATE_TEMP_INDEX, sqlite3.SQLITE_CREATE_VIEW, sqlite3.SQLITE_CREATE_TEMP_VIEW,
    sqlite3.SQLITE_CREATE_TRIGGER, sqlite3.SQLITE_CREATE_TEMP_TRIGGER, sqlite3.SQLITE_DROP_TABLE,
    sqlite3.SQLITE_DROP_TEMP_TABLE, sqlite3.SQLITE_DROP_INDEX, sqlite3.SQLITE_DROP_TEMP_INDEX,
    sqlite3.SQLITE_DROP_VIEW, sqlite3.SQLITE_DROP_TEMP_VIEW, sqlite3.SQLITE_DROP_TRIGGER,
    sqlite3.SQLITE_DROP_TEMP_TRIGGER, sqlite3.SQLITE_ALTER_TABLE, sqlite3.SQLITE_CREATE_VTABLE,
    sqlite3.SQLITE_DROP_VTABLE, sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT,
    sqlite3.SQLITE_REINDEX, sqlite3.SQLITE_ANALYZE,
}
DENIED = {sqlite3.SQLITE_ATTACH: "ATTACH", sqlite3.SQLITE_DETACH: "DETACH",
          sqlite3.SQLITE_PRAGMA: "PRAGMA"}


def _authorizer(action, arg1, arg2, db, trigger):
    if action in DENIED or action in WRITES:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() == "load_extension":
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def connect(tables: list[tuple[str, list[str], list[list]]]) -> sqlite3.Connection:
    """A fresh in-memory database holding `tables` as (name, column names, rows)."""
    con = sqlite3.connect(":memory:", isolation_level=None)
    con.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_LENGTH)
    con.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    con.execute("PRAGMA temp_store = MEMORY")  # sorts and temp b-trees: no files, RLIMIT_AS caps them
    for name, cols, rows in tables:
        con.execute(f"CREATE TABLE {_quote(name)} ({', '.join(_quote(c) for c in cols)})")
        marks = ", ".join("?" * len(cols))
        con.executemany(f"INSERT INTO {_quote(name)} VALUES ({marks})", rows)
    return con


def _size(row: tuple) -> int:
    return sum(len(v) if isinstance(v, str | bytes) else 8 for v in row)


def run(con: sqlite3.Connection, sql: str, time_limit: float = TIME_LIMIT_S,
        max_rows: int = MAX_ROWS) -> tuple[list[tuple] | None, str]:
    """(rows, "") or (None, error) for one untrusted statement, read-only, in this process:
    the progress handler bounds the time between opcodes only (see the module docstring)."""
    deadline = time.monotonic() + time_limit
    con.set_authorizer(_authorizer)
    con.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
    try:
        cur = con.execute(sql)
        rows, size = [], 0
        for row in cur:
            size += _size(row)
            if len(rows) == max_rows:
                return None, f"more than {max_rows} rows"
            if size > MAX_RESULT_BYTES:
                return None, f"result larger than {MAX_RESULT_BYTES} bytes"
            rows.append(row)
        return rows, ""
    except MemoryError:
        return None, "out of memory"
    except (sqlite3.Error, sqlite3.Warning, ValueError, OverflowError) as e:
        msg = str(e) or type(e).__name__
        if time.monotonic() > deadline:
            msg = f"time limit {time_limit:g} s exceeded ({msg})"
        return None, msg
    finally:
        con.set_progress_handler(None, 0)
        con.set_authorizer(None)


def _read(fd: int, n: int, deadline: float | None) -> bytes | None:
    """n bytes from fd, or None at EOF or past the deadline."""
    buf = b""
    while len(buf) < n:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                return None
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _recv(fd: int, deadline: float | None = None):
    head = _read(fd, 4, deadline)
    body = head and _read(fd, struct.unpack("<I", head)[0], deadline)
    return None if body is None else pickle.loads(body)


def _send(fd: int, msg) -> None:
    data = pickle.dumps(msg)
    os.write(fd, struct.pack("<I", len(data)))
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _peak_rss() -> int:
    """This process's peak resident memory in bytes: VmHWM, which starts afresh at exec
    (ru_maxrss does not: a child forked from a 1 GB parent reports 1 GB)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


def serve() -> None:
    """The child's loop: ('open', tables) | ('run', sql, limit, max_rows) | ('rss',)."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    con = None
    while (msg := _recv(0)) is not None:
        try:
            if msg[0] == "open":
                if con is not None:
                    con.close()
                con = connect(msg[1])
                reply = ([], "")
            elif msg[0] == "run":
                reply = run(con, *msg[1:])
            else:
                reply = ([(_peak_rss(),)], "")
        except MemoryError:
            reply = (None, "out of memory")
        except sqlite3.Error as e:
            reply = (None, str(e))
        _send(1, reply)


class Jail:
    """The parent's handle on the child; one query at a time (a lock serialises threads)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.workdir = ""
        self.lock = threading.Lock()
        self.tables: list = []
        atexit.register(self.close)

    def _start(self) -> None:
        self.workdir = self.workdir or tempfile.mkdtemp(prefix="tunelab-sql-")
        boot = "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')"
        self.proc = subprocess.Popen([sys.executable, "-I", "-c", boot, os.path.abspath(__file__)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     cwd=self.workdir, close_fds=True)
        self.pid = os.getpid()  # a forked parent must not share the child's pipes

    def _call(self, msg, timeout: float):
        if self.proc is None or self.pid != os.getpid():
            self._start()
            if msg[0] != "open" and self.tables:
                self._call(("open", self.tables), 30.0)
        try:
            _send(self.proc.stdin.fileno(), msg)
            reply = _recv(self.proc.stdout.fileno(), time.monotonic() + timeout)
        except OSError:
            reply = None
        if reply is None:
            self._stop()
        return reply

    def open(self, tables: list[tuple[str, list[str], list[list]]]) -> str:
        """Load a fresh database into the child; "" or the error."""
        with self.lock:
            self.tables = tables
            reply = self._call(("open", tables), 30.0)  # includes the child's start-up
            return "child process died" if reply is None else reply[1]

    def run(self, sql: str, time_limit: float = TIME_LIMIT_S,
            max_rows: int = MAX_ROWS) -> tuple[list[tuple] | None, str]:
        """Like `run` in the child, but ends within time_limit + GRACE_S whatever it calls."""
        with self.lock:
            start = time.monotonic()
            reply = self._call(("run", sql, time_limit, max_rows), time_limit + GRACE_S)
            if reply is None and time.monotonic() - start < time_limit:
                return None, "the query ended the SQL process"
            if reply is None:
                return None, f"time limit {time_limit:g} s exceeded (query killed)"
            return reply

    def peak_rss(self) -> int:
        """The live child's peak resident memory, in bytes."""
        with self.lock:
            return self._call(("rss",), 5.0)[0][0][0]

    def close(self) -> None:
        """Stop the child and remove its working directory (a later call starts both anew)."""
        self._stop()
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = ""

    def _stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc.stdin.close()
            self.proc.stdout.close()
            self.proc = None


if __name__ == "__main__":
    serve()
