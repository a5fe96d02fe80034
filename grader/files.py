"""Files the grader writes and reads: atomically, and never more than a stated size.

Every file the grader produces goes through ``atomic_write`` (a temporary file in the same
folder, fsync, rename), so after a crash or ``kill -9`` a file is either complete or absent.
Every file it reads that someone else wrote goes through ``read_capped``: the size is checked
before a byte is read.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from pathlib import Path

from grader.errors import InputError


def atomic_write(path: Path, data: bytes, *, new_mode: int = 0o600) -> None:
    """The file replaced keeps its mode; a new one gets ``new_mode`` (private by default:
    grades are nobody else's business; templates pass 0o644)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            mode = new_mode
        if mode != 0o600:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_text(path: Path, text: str, *, new_mode: int = 0o600) -> None:
    """Text as UTF-8; a lone surrogate (from a hostile string) is escaped, never fatal."""
    atomic_write(path, text.encode("utf-8", "backslashreplace"), new_mode=new_mode)


def read_capped(path: Path, limit: int, *, what: str = "file", use: str = "read") -> bytes:
    """The bytes of a regular file (never through a link) of at most ``limit`` bytes."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if stat.S_ISLNK(st.st_mode):
        raise InputError(f"{path}: is a symbolic link; only a {what} file itself is {use}")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path}: not a regular file")
    if st.st_size > limit:
        raise InputError(f"{path}: {what} of {st.st_size} bytes is larger than the "
                         f"{limit // 2**20} MiB limit")
    with open(path, "rb") as f:  # it may have grown since: read no more than the limit
        data = f.read(limit + 1)
    if len(data) > limit:
        raise InputError(f"{path}: {what} is larger than the {limit // 2**20} MiB limit")
    return data


FIGURE_NAME = re.compile(r"figures/cell-\d+-\d+\.png")  # what figure_name writes, and no other


def figure_name(cell_number: int, k: int) -> str:
    """Where a code cell's k-th figure is kept, relative to the student's log folder."""
    return f"figures/cell-{cell_number:02d}-{k}.png"


# -- private temporary folders, and what a killed run left of them ---------------------------

_TMP_NAME = re.compile(r"grader-(sub|worker|selftest|warmup|warm|ref)-(\d+)-")


def private_tmpdir(kind: str) -> Path:
    """A fresh private folder in $TMPDIR named after ``kind`` and this process's pid, so the
    next run can tell a dead run's leftovers (``kill -9`` runs no cleanup) from a live one's."""
    return Path(tempfile.mkdtemp(prefix=f"grader-{kind}-{os.getpid()}-"))


def sweep_stale_tmpdirs() -> list[Path]:
    """Remove this user's ``private_tmpdir`` folders whose process is gone; return them.

    A live pid (or a reused one) is left alone: the worst a reused pid costs is a folder kept
    until a later run."""
    import shutil

    removed: list[Path] = []
    root = Path(tempfile.gettempdir())
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        match = _TMP_NAME.match(entry.name)
        if match is None or not _pid_gone(int(match.group(2))):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            continue  # another user's, or not a folder we make: not ours to touch
        path = Path(entry.path)
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append(path)
    return removed


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: alive, someone else's
        return False
    return False
