"""Data sets an assignment stages into the sandbox and scores held-out predictions against.

The protocol and the registry are in ``base``; the kinds shipped here are ``table``,
``generated`` and ``plugin`` (an assignment's own ``DataSet`` subclass).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from grader.datasets import generated, plugin, table  # noqa: F401  (each registers its kind)
from grader.datasets.base import (KINDS, DataSet, Examples, Prepared, files_sha256,
                                  open_dataset, prepare, register, split)
from grader.datasets.plugin import load_module
from grader.spec import Assignment

__all__ = ["KINDS", "DataSet", "Examples", "Prepared", "files_sha256", "load_module", "locate",
           "open_dataset", "prepare", "register", "split", "staged_files"]


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
