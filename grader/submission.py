"""A student's submission on disk: find the folders, choose the notebook, read it, stage it.

One rule chooses the notebook in a student's folder, for ``grader run``, ``grader check`` and
Gradescope alike: the assignment's notebook name if it is there; otherwise the only notebook
in the folder (graded, with a note in the log); otherwise nothing, and the message lists what
was found and says what to upload. A symbolic link is never graded, whether it is the
notebook, the student's folder or anything inside it: a link can point at the reference or at
a classmate's work, and reading through it would grade someone else's file.

Messages name files relative to the student's folder: on Gradescope that folder is a
temporary path the student has no use for.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import nbformat

from grader.errors import InputError
from grader.files import private_tmpdir, read_capped

MAX_STAGED_BYTES = 50 * 1024 * 1024
MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024  # parsed in the grader's own process: keep it bounded
_SKIPPED_DIRS = (".ipynb_checkpoints", "__MACOSX")


@dataclass(frozen=True)
class Notebook:
    """A parsed notebook: the source of each cell, None for cells that are not code."""

    cells: tuple[str | None, ...]
    sha256: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def assignment(self) -> str | None:
        """``metadata.grader.assignment``, where the notebook declares its assignment."""
        meta = self.metadata.get("grader")
        name = meta.get("assignment") if isinstance(meta, dict) else None
        return str(name) if isinstance(name, str) and name else None


def parse(raw: bytes, *, path: Path) -> nbformat.NotebookNode:
    """nbformat's reading of ``raw``; InputError naming ``path`` when it is not a notebook."""
    try:
        nb: nbformat.NotebookNode = nbformat.reads(  # type: ignore[no-untyped-call]
            raw.decode("utf-8"), as_version=4)
    except Exception as exc:  # nbformat raises several unrelated types for bad input
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: not a valid notebook ({first})") from None
    # nbformat.reads only warns about a notebook that breaks its schema; everything after this
    # (cell labels, the runner, similarity) may then rely on every cell having a string source.
    try:
        # The cells only: notebook metadata (a kernelspec without display_name) is ignored
        # anyway (cells always run in the warm worker's Python), so it refuses nothing.
        nbformat.validate(nbformat.from_dict({**nb, "metadata": {}}))  # type: ignore[no-untyped-call]
    except Exception as exc:  # ValidationError, or a RecursionError on absurd nesting
        where = "/".join(str(k) for k in getattr(exc, "absolute_path", ()))
        detail = str(getattr(exc, "message", "") or exc).strip().splitlines()
        first = (detail[0] if detail else type(exc).__name__)[:300]
        raise InputError(f"{path}: not a valid notebook ({where + ': ' if where else ''}"
                         f"{first})") from None
    return nb


def read_bytes(path: Path) -> bytes:
    """A notebook file's bytes: never through a link, never more than the size limit."""
    return read_capped(path, MAX_NOTEBOOK_BYTES, what="notebook", use="graded")


def read_node(path: Path) -> nbformat.NotebookNode:
    """The whole notebook as nbformat has it (for the template builder and similarity)."""
    return parse(read_bytes(path), path=path)


def read_notebook(path: Path) -> Notebook:
    """Parse with nbformat; raise InputError naming the file when it is not a notebook."""
    raw = read_bytes(path)
    nb = parse(raw, path=path)
    cells = tuple(c.source if c.cell_type == "code" else None for c in nb.cells)
    return Notebook(cells, hashlib.sha256(raw).hexdigest(), dict(nb.metadata))


def assignment_name(path: Path) -> str:
    """The assignment a notebook file declares in its metadata, else its file name's stem."""
    try:
        name = read_notebook(path).assignment
    except InputError:
        name = None
    return name or path.stem


def code_cell_number(cells: Sequence[str | None], index: int) -> int:
    """1-based among code cells only: Jupyter shows no number that counts markdown cells."""
    return sum(1 for c in cells[:index + 1] if c is not None)


def cell_label(cells: Sequence[str | None], index: int) -> str:
    """How a student finds a cell: "code cell 7 (`def loss_fn(…`)"."""
    source = cells[index] if 0 <= index < len(cells) else None
    first = next((line.strip() for line in (source or "").splitlines() if line.strip()), "")
    cut = first.find("(")
    end = cut + 1 if 0 <= cut < 40 else 30
    snippet = first[:end] + ("…" if len(first) > end else "")
    number = code_cell_number(cells, index)
    return f"code cell {number} (`{snippet}`)" if snippet else f"code cell {number}"


@dataclass(frozen=True)
class Choice:
    """The notebook to grade in a student's folder, or why there is none.

    ``kind`` is empty when ``path`` is set, else ``missing_notebook``, ``several_notebooks`` or
    ``symlink`` (the error kinds a log records). ``note`` says how a notebook not named as
    expected was chosen.
    """

    path: Path | None
    kind: str = ""
    message: str = ""
    note: str = ""


def _is_link(path: Path) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        return False


def _link_refusal(shown: str, path: Path) -> Choice:
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    return Choice(None, "symlink", f"{shown} is a symbolic link (to {target}); links are not "
                  "graded: upload the notebook file itself")


def notebooks_in(folder: Path) -> tuple[list[Path], list[Path]]:
    """(regular .ipynb files, linked ones) below ``folder``, links never followed."""
    files: list[Path] = []
    links: list[Path] = []
    for root, dirs, found in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIPPED_DIRS)
        for name in sorted(found):
            if not name.endswith(".ipynb") or name.startswith("."):
                continue
            path = Path(root) / name
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                links.append(path)
            elif stat.S_ISREG(mode):
                files.append(path)
    return files, links


def choose_notebook(folder: Path, expected: str) -> Choice:
    """The one rule (see the module's docstring) for ``folder``, expecting ``expected``."""
    if _is_link(folder):
        return _link_refusal(f"the submission folder {folder.name}", folder)
    direct = folder / expected
    if _is_link(direct):
        return _link_refusal(expected, direct)
    if direct.is_file():
        return Choice(direct)
    files, links = notebooks_in(folder)
    named = [p for p in files if p.name == expected]
    if len(files) == 1 or len(named) == 1:
        chosen = named[0] if len(named) == 1 else files[0]
        rel = chosen.relative_to(folder).as_posix()
        if chosen.name == expected:
            return Choice(chosen, note=f"graded {rel}, found in a subfolder")
        return Choice(chosen, note=f"graded {rel} as {expected}: the submission has no "
                      f"{expected}, and {rel} is its only notebook")
    if not files and links:
        return _link_refusal(links[0].relative_to(folder).as_posix(), links[0])
    if not files:
        return Choice(None, "missing_notebook",
                      f"no notebook in the submission: upload your {expected}")
    found = ", ".join(p.relative_to(folder).as_posix() for p in files)
    return Choice(None, "several_notebooks",
                  f"no {expected} in the submission, and several other notebooks ({found}): "
                  f"upload your work as {expected}, alone")


def student_dirs(submissions: Path) -> list[Path]:
    """Each student's folder (links included, so that choosing refuses them with a reason)."""
    if not submissions.is_dir():
        raise InputError(f"{submissions}: no such folder")
    return sorted(p for p in submissions.iterdir()
                  if not p.name.startswith(".") and (p.is_dir() or _is_link(p)))


def stage(source_dir: Path, *, extra: Callable[[Path], None] | None = None) -> Path:
    """A private copy of a submission's regular files; links and special files are left out."""
    workdir = private_tmpdir("sub")
    try:
        total = 0
        for root, dirs, files in os.walk(source_dir, followlinks=False):
            rel = Path(root).relative_to(source_dir)
            dirs[:] = [d for d in dirs if not (Path(root) / d).is_symlink()]
            for name in files:
                src = Path(root) / name
                st = os.lstat(src)
                if not stat.S_ISREG(st.st_mode):
                    continue
                total += st.st_size
                if total > MAX_STAGED_BYTES:
                    continue
                (workdir / rel).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, workdir / rel / name, follow_symlinks=False)
        if extra is not None:
            extra(workdir)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return workdir
