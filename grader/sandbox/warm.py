"""A warm worker kept between runs: ``grader run --keep-warm SECONDS`` (or ``$GRADER_KEEP_WARM``).

A run's worker spends seconds on its imports (torch, torch._dynamo, matplotlib, the
assignment's warm-up) before it serves; for a run of one submission that is most of its wall
time. With keep-warm, those imports are done by a *listener* (``worker.listen``) that outlives
the run; each run connects to it and gets a fork of it, which is then exactly a freshly
started worker, in milliseconds. The listener ends after SECONDS without a new run.

One listener per *fingerprint*: the interpreter and its site-packages, the grader's own code,
the assignment's warm-up (modules, and the scripts' contents) and the user; a run whose
fingerprint differs (the grader was edited, a package installed, another assignment) starts
a listener of its own, and the old one idles out. The socket lives in the user's cache folder
(``grading.expected.cache_root()/warm``, made 0700 and checked), so only its owner can reach
it; the listener turns away a peer of another uid and one that does not first send the secret
kept beside the socket (0600, in that same folder, which no sandbox can read: the cache is one
of its secret paths), and sandboxes cannot make Unix sockets at all (seccomp,
docs/security.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

from grader.errors import InputError, SandboxError
from grader.sandbox.worker import ANOTHER_LISTENER

ENV = "GRADER_KEEP_WARM"
START_SECONDS = 120  # a listener that does not serve by then is killed, as a worker would be
_MAX_SOCKET_PATH = 98  # sun_path holds 107 bytes and a NUL; the listener binds PATH.<pid> first


def keep_warm_seconds(option: float | None) -> float:
    """The idle lifetime asked for: the option, else ``$GRADER_KEEP_WARM``, else 0 (off)."""
    if option is not None:
        return max(0.0, option)
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return 0.0
    try:
        return max(0.0, float(raw))
    except ValueError:
        raise InputError(f"${ENV}={raw!r}: not a number of seconds") from None


def fingerprint(setup: dict[str, Any]) -> str:
    """What a listener's imports depend on; a listener serves only runs with its own."""
    import grader

    h = hashlib.sha256()
    purelib = sysconfig.get_paths()["purelib"]
    for part in (sys.executable, sys.prefix, sys.version, str(os.geteuid()),
                 json.dumps(setup, sort_keys=True), str(_mtime_ns(purelib))):
        h.update(part.encode() + b"\0")
    package = Path(grader.__file__).parent
    for path in sorted(package.rglob("*.py")):
        h.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes() + b"\0")
    for script in setup.get("warmup", []):
        try:
            h.update(Path(script).read_bytes() + b"\0")
        except OSError:
            h.update(b"missing\0")
    return h.hexdigest()[:16]


def _mtime_ns(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


def socket_path(key: str) -> Path | str:
    """The listener's socket for fingerprint ``key``; a string saying why none can be used
    (the folder is not private to this user, or its path is too long for a Unix socket)."""
    from grader.grading.expected import cache_root

    folder = cache_root() / "warm"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.stat(folder, follow_symlinks=False)
    except OSError as exc:
        return f"cannot make {folder} ({exc.strerror or exc})"
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        return f"{folder} is not a folder of this user's alone (mode 0700)"
    path = folder / f"{key}.sock"
    if len(os.fsencode(path)) > _MAX_SOCKET_PATH:
        return f"{path} is too long for a Unix socket"
    return path


def connect(path: Path) -> tuple[socket.socket, int] | None:
    """A worker forked for this run by the listener at ``path`` (its socket, its pid); None
    where no listener serves there (never started, ended, or killed)."""
    try:
        token = path.with_suffix(".token").read_bytes()[:128]
    except OSError:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    try:
        sock.connect(str(path))
        sock.sendall(token)
        raw = sock.recv(1 << 16)
        greeting = json.loads(raw) if raw else None
    except (OSError, ValueError):
        sock.close()
        return None
    if not isinstance(greeting, dict) or not isinstance(greeting.get("pid"), int):
        sock.close()
        return None
    sock.settimeout(None)
    return sock, greeting["pid"]


def start(path: Path, setup: str, idle: float, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start a listener for ``path`` in a session of its own (a Ctrl-C of this run's terminal
    does not end it); what it prints goes to ``path.log``."""
    log = os.open(path.with_suffix(".log"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "grader.sandbox.worker", "--listen", str(path), f"{idle:g}",
             setup], env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=log, cwd=path.parent, start_new_session=True)
    finally:
        os.close(log)


def await_listener(path: Path, listener: subprocess.Popen[bytes] | None
                   ) -> tuple[socket.socket, int]:
    """Connect once the listener serves (it is importing): ``SandboxError`` with the last
    lines it printed if it exits first or takes longer than ``START_SECONDS``."""
    deadline = time.monotonic() + START_SECONDS
    while True:
        got = connect(path)
        if got is not None:
            return got
        status = listener.poll() if listener is not None else None
        if listener is None or (status is not None and status != ANOTHER_LISTENER):
            break
        if time.monotonic() > deadline:
            listener.kill()
            listener.wait()
            break
        time.sleep(0.05)
    try:
        said = path.with_suffix(".log").read_text(errors="replace").strip()[-2000:]
    except OSError:
        said = ""
    raise SandboxError(f"the warm grading worker ({path}) failed to start: "
                       f"{said or 'it ended without a word'}")

