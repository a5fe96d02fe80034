from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "submissions"
# The copy the project ships: the last-name assignment reads it by default, so tests need no
# flag, no environment variable and no network to find it.
NAMES_DATA = ROOT / "assignments" / "rnn_last_name" / "data" / "names"
os.environ.pop("GRADER_NAMES_DATA", None)
# Expected values are cached per user (grading.expected.cache_root): the suite keeps its own
# cache, fresh for each run, so no test depends on what an earlier run left in ~/.cache.
if "GRADER_CACHE_DIR" not in os.environ:
    import atexit
    import tempfile

    os.environ["GRADER_CACHE_DIR"] = tempfile.mkdtemp(prefix="pytest-expected-cache-")
    atexit.register(shutil.rmtree, os.environ["GRADER_CACHE_DIR"], True)


def grader_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
               timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the installed console script the way a user would."""
    exe = Path(sys.executable).parent / "grader"
    return subprocess.run([str(exe), *args], cwd=cwd or ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


@pytest.fixture(scope="session")
def graded_examples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The bundled examples graded once through the library: student -> log."""
    from grader import spec
    from grader.submission import student_dirs
    from grader.grading.run import GradingSession

    out = tmp_path_factory.mktemp("grades")
    a = spec.find(ROOT, "rnn_and_grad")
    with GradingSession(root=ROOT, assignment=a, out_dir=out, jobs=2) as session:
        results = session.grade(student_dirs(EXAMPLES), jobs=2)
    return {"out": out, "logs": {r.log.student: r.log.as_dict() for r in results}}


@pytest.fixture()
def submissions(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "submissions"
    d.mkdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture()
def private_tmpdir(tmp_path: Path) -> Iterator[Path]:
    """An empty folder to be a run's $TMPDIR, that only this test uses.

    As root, student code runs as another uid (sandbox.confine.drop_privileges), which has to
    reach the staged folders in $TMPDIR: pytest's own folders are root's alone (0700), so the
    folder is made in the system's temporary folder, passable (0711) but not listable."""
    if os.geteuid() != 0:
        folder = tmp_path / "private_tmp"
        folder.mkdir()
        yield folder
        return
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="pytest-private-tmpdir-", dir="/tmp"))
    folder.chmod(0o711)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)



def uid_drop_unreachable() -> str:
    """As root: the folder that keeps the sandbox uid from this grader's venv or package ('' if
    none, or not root). A clone in root's home or in ``mktemp -d``: the uid drop is off there and
    root nests in its own namespaces under Landlock instead (docs/security.md)."""
    from grader.sandbox import confine

    if os.geteuid() != 0:
        return ""
    uid = sandbox_uid()
    return confine.unreachable_grader(uid, uid)[1]


def sandbox_uid() -> int:
    """The uid the first worker slot runs student code as (nobody until the grader made its
    own user)."""
    import pwd

    from grader.sandbox import confine

    try:
        return pwd.getpwnam(confine.SANDBOX_USER).pw_uid
    except KeyError:
        return confine.NOBODY


# The protections a log may show off on this machine for that reason alone.
NESTED_ROOT_OFF = ["unprivileged uid"] if uid_drop_unreachable() else []
