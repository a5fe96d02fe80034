"""A worker kept warm between runs (``grader run --keep-warm``, grader.sandbox.warm).

The toy course is graded cold, then through a listener kept by the first run: same logs, the
listener reused, replaced when killed, gone with its socket and its folder once idle; a cache
folder others may enter keeps no listener at all.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import ROOT, grader_cli

pytestmark = pytest.mark.slow
TOY = ROOT / "tests" / "toy"
NAME = "nearest_centroid"
STARTED = re.compile(r"^started a warm worker \(pid (\d+)\) for later runs; it ends after "
                     r"(\S+) s without one$", re.M)
USED = re.compile(r"^used the warm worker kept by an earlier run \([0-9a-f]{16}\.sock\)$", re.M)


@pytest.fixture()
def course(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The toy course with two students, and a cache folder of its own: a short path, as a
    Unix socket's must be (pytest's own folders are too deep)."""
    subs = tmp_path / "submissions"
    for student in ("ada", "bo"):
        (subs / student).mkdir(parents=True)
        shutil.copy(TOY / "reference" / f"{NAME}.ipynb", subs / student / f"{NAME}.ipynb")
    cache = Path(tempfile.mkdtemp(prefix="gw-"))
    started: list[int] = []
    try:
        yield {"subs": subs, "out": tmp_path, "cache": cache, "started": started}
    finally:
        for pid in started:  # whatever a failed assertion left running
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(cache, ignore_errors=True)


def _run(course: dict[str, Any], out: str, *extra: str) -> tuple[dict[str, Any], str]:
    r = grader_cli("run", str(course["subs"]), "--course", str(TOY), "--assignment", NAME,
                   "--out", str(course["out"] / out), "-j", "1", *extra,
                   env={"GRADER_CACHE_DIR": str(course["cache"])}, timeout=300)
    assert r.returncode == 0, r.stderr
    course["started"] += [int(pid) for pid, _ in STARTED.findall(r.stderr)]
    logs = {}
    for student in ("ada", "bo"):
        log = json.loads((course["out"] / out / student / "submission_log.json").read_text())
        logs[student] = {k: log[k] for k in ("score", "max_score", "checks", "cells")}
        for cell in logs[student]["cells"]:
            cell.pop("seconds", None)
    return logs, r.stderr


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.2)
    return False


def _warm_folders(pid: int) -> list[Path]:
    return list(Path(tempfile.gettempdir()).glob(f"grader-warm-{pid}-*"))


def test_a_kept_worker_grades_as_a_new_one_and_ends_when_idle(course: dict[str, Any]) -> None:
    cold, said = _run(course, "cold")
    assert "warm worker" not in said
    assert cold["ada"]["score"] == cold["ada"]["max_score"] > 0

    first, said = _run(course, "first", "--keep-warm", "6")
    (pid, idle), = STARTED.findall(said)
    assert idle == "6" and not USED.search(said)
    assert first == cold
    socket_file, = (course["cache"] / "warm").glob("*.sock")
    assert (course["cache"] / "warm").stat().st_mode & 0o777 == 0o700
    assert _warm_folders(int(pid))

    # Only a run that read the secret beside the socket gets a worker.
    token = socket_file.with_suffix(".token")
    assert token.stat().st_mode & 0o777 == 0o600
    for sent in (b"", b"0" * 64, token.read_bytes()[:-1] + b"x"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(15)
            s.connect(str(socket_file))
            s.sendall(sent)
            if not sent:
                s.shutdown(socket.SHUT_WR)
            assert s.recv(1024) == b""
    from grader.sandbox import warm

    got = warm.connect(socket_file)
    assert got is not None and got[1] != int(pid)  # a fork of the listener, for this caller
    got[0].sendall(b'{"cmd": "exit"}')
    got[0].close()

    again, said = _run(course, "again", "--keep-warm", "6")
    assert USED.search(said) and not STARTED.search(said), said
    assert again == cold

    # Killed outright, it leaves its socket behind: the next run starts a new listener.
    os.kill(int(pid), signal.SIGKILL)
    assert _gone(int(pid), 10) and socket_file.exists()
    replaced, said = _run(course, "replaced", "--keep-warm", "3")
    (new_pid, _), = STARTED.findall(said)
    assert new_pid != pid and replaced == cold
    assert not _warm_folders(int(pid))  # the dead one's folder, swept by the new run

    # Idle for 3 s, the new one ends and takes its socket and its folder with it.
    assert _gone(int(new_pid), 30)
    assert not socket_file.exists() and not _warm_folders(int(new_pid))
    assert list((course["cache"] / "warm").iterdir()) == []


def test_a_cache_folder_others_may_enter_keeps_no_worker(course: dict[str, Any]) -> None:
    warm = course["cache"] / "warm"
    warm.mkdir(mode=0o755)
    warm.chmod(0o755)
    logs, said = _run(course, "open", "--keep-warm", "60")
    assert said.splitlines()[-1] == (f"no warm worker kept: {warm} is not a folder of this "
                                     "user's alone (mode 0700)"), said
    assert not STARTED.search(said) and list(warm.iterdir()) == []
    assert logs["ada"]["score"] == logs["ada"]["max_score"] > 0


def test_a_listener_serves_only_its_own_fingerprint(tmp_path: Path) -> None:
    """Another warm-up, or the same script edited, is another listener's."""
    from grader.sandbox import warm

    script = tmp_path / "warmup.py"
    script.write_text("import numpy\n")
    base = warm.fingerprint({"preload": ["torch"], "warmup": [str(script)]})
    assert warm.fingerprint({"preload": ["torch"], "warmup": [str(script)]}) == base
    assert warm.fingerprint({"preload": ["tqdm"], "warmup": [str(script)]}) != base
    script.write_text("import numpy, torch\n")
    assert warm.fingerprint({"preload": ["torch"], "warmup": [str(script)]}) != base


def test_keep_warm_from_the_environment_must_be_seconds(course: dict[str, Any]) -> None:
    r = grader_cli("run", str(course["subs"]), "--course", str(TOY), "--assignment", NAME,
                   "--out", str(course["out"] / "bad"),
                   env={"GRADER_CACHE_DIR": str(course["cache"]), "GRADER_KEEP_WARM": "soon"})
    assert r.returncode == 3, r.stderr
    assert r.stderr.splitlines()[-1] == ("grader: error: $GRADER_KEEP_WARM='soon': not a "
                                         "number of seconds")
