"""Data sets an assignment stages into the sandbox and scores held-out predictions against.

The protocol and the registry are in ``base``; the kinds shipped here are ``table``,
``generated`` and ``plugin`` (an assignment's own ``DataSet`` subclass).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from grader.datasets import generated, plugin, table  # noqa: F401  (each registers its kind)
from grader.datasets.base import (KINDS, DataSet, Examples, Prepared, files_sha256,
                                  open_dataset, prepare, register, split)
from grader.datasets.plugin import load_module
from grader.spec import Assignment

__all__ = ["KINDS", "DataSet", "Examples", "Prepared", "files_sha256", "load_module", "locate",
           "open_dataset", "prepare", "register", "split", "staged_files", "StudentCopy",
           "student_copy"]


def locate(assignment: Assignment, data_dir: Path | None) -> Path | None:
    """The folder holding the assignment's data files (to ship them); None for a data set
    made by code, which has none."""
    if assignment.data is None:
        return None
    return open_dataset(assignment).locate(data_dir)


def staged_files(assignment: Assignment, data_dir: Path | None, workdir: Path
                 ) -> dict[Path, bytes]:
    """What ``Prepared.stage`` writes, as ``{workdir/<stage_as>/...: content}``: the visible
    part only, as a graded notebook finds it."""
    prepared = prepare(assignment, data_dir)
    if prepared is None:
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        prepared.stage(Path(tmp))
        return {workdir / p.relative_to(tmp): p.read_bytes()
                for p in sorted(Path(tmp).rglob("*")) if p.is_file()}


@dataclass(frozen=True)
class StudentCopy:
    """The data a student template ships: the visible part, as a graded notebook finds it,
    plus the source folder's other files (a licence, a README) as they are."""

    folder: Path
    files: dict[Path, bytes]
    # data.sha256 of the copy, as the student's checks verify it.
    sha256: str
    # The copy is the source, byte for byte: nothing was held out of it (a download of
    # data.url then yields the same files).
    whole: bool


def student_copy(assignment: Assignment, data_dir: Path | None, template_dir: Path
                 ) -> StudentCopy | None:
    """The template's copy of a data set read from files; None for one made by code."""
    source = locate(assignment, data_dir)
    if source is None or assignment.data is None:
        return None
    folder = template_dir / assignment.data.stage_as
    prepared = prepare(assignment, data_dir)
    assert prepared is not None
    with tempfile.TemporaryDirectory() as tmp:
        prepared.stage(Path(tmp))
        staged = Path(tmp) / assignment.data.stage_as
        files = {folder / p.relative_to(staged): p.read_bytes()
                 for p in sorted(staged.rglob("*")) if p.is_file()}
        sha256 = prepared.dataset.checksum(staged)
    originals = {folder / p.name: p.read_bytes() for p in sorted(source.iterdir())
                 if p.is_file() and not p.is_symlink()}
    examples = {folder / p.name for p in prepared.dataset.data_files(source)}
    for path, content in originals.items():
        if path not in examples:
            files.setdefault(path, content)
    return StudentCopy(folder, files, sha256, whole=files == originals)
