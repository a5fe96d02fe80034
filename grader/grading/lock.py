"""One run per output folder: a lock held while a run writes there, naming its holder.

Two runs writing one ``--out`` damage each other (each sets aside the other's new logs, each
rewrites the summary from what it sees), so a second run is refused with a message naming the
first: its pid, host, start time and command. The lock is an ``flock`` on ``.grader.lock`` in
the folder: the kernel releases it when its process ends, however it ends (``kill -9``
included), so a killed run never leaves a folder locked. On a system without ``fcntl`` the lock
is not taken (there is no sandbox to run submissions there either). The file is removed as
the lock is let go, so a finished run leaves only its logs.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType

from grader.errors import InputError

LOCK_NAME = ".grader.lock"
_MAX_LOCK_BYTES = 4096


class OutputLocked(InputError):
    """Another run is writing to the same output folder."""


class OutputLock:
    """``with OutputLock(out_dir):`` holds the folder for this process, or raises
    ``OutputLocked`` naming the run that holds it."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.path = out_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # Windows: no sandbox, no run to protect
            return
        # As root, student code runs as another uid (sandbox.confine.drop_privileges): a
        # grades folder made here is root's alone; one that exists is checked, not changed.
        self.out_dir.mkdir(mode=0o700 if os.geteuid() == 0 else 0o777, parents=True,
                           exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _describe(os.pread(fd, _MAX_LOCK_BYTES, 0))
                os.close(fd)
                raise OutputLocked(f"{self.out_dir}: another grader run is writing here "
                                   f"({holder}); wait for it to finish, or grade into another "
                                   "--out") from None
            except BaseException:
                os.close(fd)
                raise
            # The holder before us removes the file as it lets go (release): if ours was
            # removed meanwhile, it locks nothing anyone else will see. Open it again.
            try:
                if os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
              "command": " ".join(sys.argv)[:500]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode("utf-8", "backslashreplace"), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            try:  # still holding it: nobody else can be between its stat and its lock
                os.unlink(self.path)
            except OSError:
                pass
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _describe(raw: bytes) -> str:
    """The holder as its lock file says: never trusted beyond being shown, and shown short."""
    try:
        data = json.loads(raw.decode("utf-8", "replace"))
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return "a run that has not said who it is yet"
    parts = [f"pid {data.get('pid')}", f"on {data.get('host')}",
             f"since {data.get('started')}", f"command: {data.get('command')}"]
    return ", ".join(str(p)[:200] for p in parts)
