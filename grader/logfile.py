"""``submission_log.json``: its only writer, its typed reader, and the class's ``summary.csv``.

Every grading path (``grader run``, ``grader check``, ``grader-check``, the in-notebook
``checks.check``) builds a ``SubmissionLog`` and nothing else writes one; every reader gets a
``SubmissionLog`` back (``read``, ``iter_logs``), never a loose dict. Files are written
atomically (``grader.files``), so after a crash or ``kill -9`` a log is complete or absent.

Portable: no torch, no libc. ``versions`` reads installed packages' metadata instead of
importing them (importing torch alone costs the grader's process seconds).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import platform
import shutil
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Iterator

from grader import __version__
from grader.execution import Protections, protections_off
from grader.files import atomic_write_text, read_capped

SCHEMA_VERSION = 1
LOG_NAME = "submission_log.json"
STALE_DIR = ".stale"
SUMMARY_NAME = "summary.csv"
MAX_LOG_BYTES = 64 * 2**20
# What a kernel with no sandbox reports (grader-check, the in-notebook check).
NO_SANDBOX = {"sandbox": "off: your own kernel (no sandbox: the code checked is your own)"}


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome; a hidden check's ``message`` says only whether it passed.

    ``detail`` is the instructor's: a hidden check's full explanation (the got | expected
    table, the error), for regrade requests. Student-facing outputs (feedback.html, Gradescope's
    results.json) never read it, and the student's own checks have no hidden check."""

    name: str
    question: str
    visibility: str
    score: float
    max_score: float
    passed: bool
    message: str
    hint: str = ""
    optional: bool = False  # extra credit: its max_score is not part of the total's
    detail: str = ""
    # What the grader measured, e.g. {"accuracy": 0.79} on held-out inputs (the leaderboard's).
    measured: dict[str, float] | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "question": self.question, "score": self.score,
            "max_score": self.max_score, "passed": self.passed, "visibility": self.visibility,
            "message": self.message, "hint": self.hint, "optional": self.optional}
        if self.detail:  # only hidden checks that failed have one
            out["detail"] = self.detail
        if self.measured is not None:
            out["measured"] = dict(self.measured)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CheckResult:
        return cls(name=str(d["name"]), question=str(d["question"]),
                   visibility=str(d.get("visibility", "visible")), score=float(d["score"]),
                   max_score=float(d["max_score"]), passed=bool(d["passed"]),
                   message=str(d.get("message", "")), hint=str(d.get("hint", "")),
                   optional=bool(d.get("optional", False)), detail=str(d.get("detail", "")),
                   measured=({str(k): float(v) for k, v in d["measured"].items()}
                             if isinstance(d.get("measured"), dict) else None))


def code_fingerprint() -> str:
    """Hash of the grader's own source: any change to it invalidates cached results."""
    h = hashlib.sha256()
    package = Path(__file__).parent
    for path in sorted(package.rglob("*.py")):
        h.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def versions() -> dict[str, str]:
    return {"python": platform.python_version(), "torch": _version("torch"),
            "numpy": _version("numpy"), "grader": __version__}


def _round(x: float) -> float:
    return round(x, 4)


@dataclass(frozen=True)
class SubmissionLog:
    """Everything about one graded submission; ``as_dict`` is the JSON on disk."""

    assignment: str
    student: str
    notebook: str
    notebook_sha256: str | None
    checks: tuple[CheckResult, ...]
    errors: tuple[dict[str, Any], ...] = ()
    notes: tuple[str, ...] = ()
    cells: tuple[dict[str, Any], ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    protections: Protections = field(default_factory=dict)
    cache_key: str = ""
    records: dict[str, Any] | None = None  # what the notebook reported of itself (no points)
    versions: dict[str, str] = field(default_factory=versions)
    # The gradebook's part (grader.gradebook), applied on top of the checks' automatic scores:
    # when it was submitted and how that was found ({"time", "source"}), the late penalty
    # ({"fraction", "rule", ...}), the instructor's overrides ({"target", "question", "points",
    # "delta", "reason", "who"}), and the leaderboard entries ({"name", "value", "order"}).
    submitted: dict[str, Any] | None = None
    penalty: dict[str, Any] | None = None
    overrides: tuple[dict[str, Any], ...] = ()
    leaderboard: tuple[dict[str, Any], ...] = ()

    @property
    def auto_score(self) -> float:
        """The checks' points alone, before overrides and penalty."""
        return _round(sum(c.score for c in self.checks))

    @property
    def penalty_points(self) -> float:
        """The late penalty, a fraction of the score after overrides (never below zero)."""
        if not self.penalty:
            return 0.0
        before = self.auto_score + sum(float(o["delta"]) for o in self.overrides)
        return _round(float(self.penalty["fraction"]) * max(before, 0.0))

    @property
    def score(self) -> float:
        return _round(self.auto_score + sum(float(o["delta"]) for o in self.overrides)
                      - self.penalty_points)

    @property
    def max_score(self) -> float:
        """Optional checks are extra credit: they add to the score, never to the maximum."""
        return _round(sum(c.max_score for c in self.checks if not c.optional))

    @property
    def full_marks(self) -> bool:
        return self.score >= self.max_score > 0

    @property
    def protections_off(self) -> list[str]:
        return protections_off(self.protections)

    def questions(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for c in self.checks:
            q = out.setdefault(c.question, {"score": 0.0, "max_score": 0.0})
            q["score"] = _round(q["score"] + c.score)
            if not c.optional:
                q["max_score"] = _round(q["max_score"] + c.max_score)
        for o in self.overrides:  # an override counts in its question (the penalty in none)
            q = out.setdefault(str(o["question"]), {"score": 0.0, "max_score": 0.0})
            q["score"] = _round(q["score"] + float(o["delta"]))
        return out

    def without_timings(self) -> SubmissionLog:
        return replace(self, timings={})

    def as_dict(self) -> dict[str, Any]:
        out = {
            "schema_version": SCHEMA_VERSION,
            "assignment": self.assignment,
            "student": self.student,
            "notebook": self.notebook,
            "notebook_sha256": self.notebook_sha256,
            "score": self.score,
            "max_score": self.max_score,
            "questions": self.questions(),
            "checks": [c.as_dict() for c in self.checks],
            "errors": list(self.errors),
            "notes": list(self.notes),
            "cells": list(self.cells),
            "timings": {k: _round(v) for k, v in self.timings.items()},
            "versions": dict(self.versions),
            "sandbox": {"protections": dict(self.protections), "off": self.protections_off},
            "cache_key": self.cache_key,
        }
        if self.records is not None:
            out["records"] = self.records
        if self.submitted is not None:
            out["submitted"] = dict(self.submitted)
        if self.penalty is not None:
            out["penalty"] = {**self.penalty, "points": self.penalty_points}
        if self.overrides:
            out["overrides"] = [dict(o) for o in self.overrides]
        if self.submitted is not None or self.penalty is not None or self.overrides:
            out["auto_score"] = self.auto_score
        if self.leaderboard:
            out["leaderboard"] = [dict(e) for e in self.leaderboard]
        return out

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SubmissionLog:
        """Raises KeyError, TypeError or ValueError for a log not of this shape."""
        sandbox = d.get("sandbox") or {}
        return cls(
            assignment=str(d["assignment"]), student=str(d["student"]),
            notebook=str(d["notebook"]),
            notebook_sha256=None if d.get("notebook_sha256") is None else str(d["notebook_sha256"]),
            checks=tuple(CheckResult.from_dict(c) for c in d["checks"]),
            errors=tuple(dict(e) for e in d.get("errors", [])),
            notes=tuple(str(n) for n in d.get("notes", [])),
            cells=tuple(dict(c) for c in d.get("cells", [])),
            timings={str(k): float(v) for k, v in (d.get("timings") or {}).items()},
            protections={str(k): str(v) for k, v in (sandbox.get("protections") or {}).items()},
            cache_key=str(d.get("cache_key", "")),
            records=dict(d["records"]) if isinstance(d.get("records"), dict) else None,
            versions={str(k): str(v) for k, v in (d.get("versions") or {}).items()},
            submitted=dict(d["submitted"]) if isinstance(d.get("submitted"), dict) else None,
            penalty=({k: v for k, v in d["penalty"].items() if k != "points"}
                     if isinstance(d.get("penalty"), dict) else None),
            overrides=tuple(dict(o) for o in d.get("overrides", [])),
            leaderboard=tuple(dict(e) for e in d.get("leaderboard", [])))



def write(path: Path, log: SubmissionLog) -> Path:
    """The only place a ``submission_log.json`` is written."""
    atomic_write_text(path, log.to_json())
    return path


def write_in(out_dir: Path, log: SubmissionLog) -> Path:
    """``out_dir/<student>/submission_log.json``."""
    return write(out_dir / log.student / LOG_NAME, log)


def read(path: Path) -> SubmissionLog | None:
    """A previously written log, or None if absent, unreadable or of another shape (then it is
    regraded)."""
    try:
        data = json.loads(read_capped(path, MAX_LOG_BYTES, what="log"))
    except Exception:  # missing, too large, not JSON: all mean "no usable log"
        return None
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        return None
    try:
        return SubmissionLog.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def read_in(out_dir: Path, student: str) -> SubmissionLog | None:
    return read(out_dir / student / LOG_NAME)


def iter_logs(out_dir: Path) -> Iterator[SubmissionLog]:
    """Every readable log directly under ``out_dir`` (set-aside ones excluded), by student."""
    for path in sorted(out_dir.glob(f"*/{LOG_NAME}")):
        if path.parent.name.startswith("."):
            continue
        log = read(path)
        if log is not None:
            yield log


def set_aside_stale(out_dir: Path, students: Iterable[str]) -> list[str]:
    """Move the logs of students who are no longer among the submissions to ``.stale/``.

    They are kept (nothing is lost) but no longer counted by the summary or ``grader report``.
    Returns the students moved.
    """
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


def write_summary(out_dir: Path, logs: Iterable[SubmissionLog], questions: list[str]) -> Path:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    logs = sorted(logs, key=lambda d: d.student)
    # score is after overrides and penalty; when the gradebook did anything (a deadline, an
    # override), four more columns say what made it so.
    book = any(log.submitted is not None or log.overrides for log in logs)
    writer.writerow(["student", "score", "max_score", *questions, "errors",
                     *(("auto_score", "penalty", "overrides", "submitted") if book else ())])
    for log in logs:
        per_q = log.questions()
        gradebook = [log.auto_score, log.penalty_points,
                     "; ".join(f"{o['target']}: {o['points']:g} ({o['reason']})"
                               for o in log.overrides),
                     (log.submitted or {}).get("time", "")]
        writer.writerow([log.student, log.score, log.max_score,
                         *(per_q.get(q, {}).get("score", 0) for q in questions),
                         "; ".join(str(e.get("message", "")) for e in log.errors),
                         *(gradebook if book else ())])
    path = out_dir / SUMMARY_NAME
    atomic_write_text(path, buf.getvalue())
    return path
