"""Data sets an assignment stages into the sandbox and scores held-out predictions against."""

from __future__ import annotations

from pathlib import Path

from grader.datasets.names_tmp import Prepared, locate
from grader.datasets.names_tmp import prepare as _prepare
from grader.spec import Assignment

__all__ = ["Prepared", "locate", "prepare"]


def prepare(assignment: Assignment, data_dir: Path | None, *, missing_ok: bool = False
            ) -> Prepared | None:
    if assignment.data is None:
        return None
    return _prepare(assignment, data_dir, missing_ok=missing_ok)
