"""Write what grading found: ``submission_log.json`` per student and ``summary.csv``.

Every file is written atomically (a temporary file in the same folder, fsync, rename), so after
a crash or ``kill -9`` a log is either complete or absent, never half written.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from grader import __version__
from grader.grade import CheckResult

SCHEMA_VERSION = 1
LOG_NAME = "submission_log.json"


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def code_fingerprint() -> str:
    """Hash of the grader's own source: any change to it invalidates cached results."""
    import hashlib

    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def versions() -> dict[str, str]:
    import numpy
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "grader": __version__}


@dataclass
class SubmissionLog:
    """Everything about one graded submission; ``as_dict`` is the JSON written to disk."""

    assignment: str
    student: str
    notebook: str
    notebook_sha256: str | None
    checks: tuple[CheckResult, ...]
    errors: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cells: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    protections: dict[str, str] = field(default_factory=dict)
    cache_key: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def score(self) -> float:
        return round(sum(c.score for c in self.checks), 4)

    @property
    def max_score(self) -> float:
        """Optional checks are extra credit: they add to the score, never to the maximum."""
        return round(sum(c.max_score for c in self.checks if not c.optional), 4)

    def questions(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for c in self.checks:
            q = out.setdefault(c.question, {"score": 0.0, "max_score": 0.0})
            q["score"] = round(q["score"] + c.score, 4)
            if not c.optional:
                q["max_score"] = round(q["max_score"] + c.max_score, 4)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "assignment": self.assignment,
            "student": self.student,
            "notebook": self.notebook,
            "notebook_sha256": self.notebook_sha256,
            "score": self.score,
            "max_score": self.max_score,
            "questions": self.questions(),
            "checks": [c.as_dict() for c in self.checks],
            "errors": self.errors,
            "notes": self.notes,
            "cells": self.cells,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "versions": versions(),
            "sandbox": {"protections": self.protections,
                        "off": sorted(k for k, v in self.protections.items() if v.startswith("off"))},
            "cache_key": self.cache_key,
            **self.extra,
        }


def write_log(out_dir: Path, log: SubmissionLog) -> Path:
    path = out_dir / log.student / LOG_NAME
    atomic_write(path, (json.dumps(log.as_dict(), indent=2, allow_nan=False) + "\n").encode())
    return path


def read_log(path: Path) -> dict[str, Any] | None:
    """A previously written log, or None if absent or unreadable (then it is regraded)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        return None
    return data


STALE_DIR = ".stale"


def set_aside_stale(out_dir: Path, students: Iterable[str]) -> list[str]:
    """Move the logs of students who are no longer among the submissions to ``.stale/``.

    They are kept (nothing is lost) but no longer counted by the summary or ``grader report``.
    Returns the students moved.
    """
    import shutil

    present = set(students)
    moved = []
    for path in sorted(out_dir.glob(f"*/{LOG_NAME}")):
        student = path.parent.name
        if student in present or student.startswith("."):
            continue
        target = out_dir / STALE_DIR / student
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path.parent, target)
        moved.append(student)
    return moved


def write_summary(out_dir: Path, logs: Iterable[dict[str, Any]], questions: list[str]) -> Path:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["student", "score", "max_score", *questions, "errors"])
    for log in sorted(logs, key=lambda d: str(d["student"])):
        per_q = log.get("questions", {})
        writer.writerow([log["student"], log["score"], log["max_score"],
                         *(per_q.get(q, {}).get("score", 0) for q in questions),
                         "; ".join(str(e.get("message", "")) for e in log.get("errors", []))])
    path = out_dir / "summary.csv"
    atomic_write(path, buf.getvalue().encode())
    return path
