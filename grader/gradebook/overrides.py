"""``overrides.csv``: the instructor's corrections, applied on top of the automatic scores.

Columns: ``student, target, points, reason, who``; ``target`` is a check's name or a question's
id, and ``points`` is what that check (or question) is worth for this student from now on. The
file is the grader's input, never its output, so an override outlives every regrade: each run
applies it again to the fresh automatic score. A student, check or question the run does not
know is an error naming the line, never a row skipped.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

from grader.errors import InputError
from grader.files import read_capped
from grader.logfile import SubmissionLog
from grader.spec import Assignment

OVERRIDES_NAME = "overrides.csv"
COLUMNS = ("student", "target", "points", "reason", "who")
MAX_BYTES = 8 * 2**20


@dataclass(frozen=True)
class Override:
    student: str
    target: str  # a check's name or a question's id
    question: str  # the question it counts in
    points: float
    reason: str
    who: str
    line: int
    is_check: bool


def read(path: Path, a: Assignment, students: set[str]) -> list[Override]:
    text = read_capped(path, MAX_BYTES, what="overrides file").decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
        raise InputError(f"{path}: line 1: missing column(s) {', '.join(missing)} "
                         f"(expected {', '.join(COLUMNS)})")
    checks = {c.name: c for c in a.checks}
    questions = {q.id for q in a.questions}
    out: list[Override] = []
    seen: dict[tuple[str, str], int] = {}
    for row in reader:
        line = reader.line_num
        where = f"{path}: line {line}"
        student, target = (row["student"] or "").strip(), (row["target"] or "").strip()
        if student not in students:
            raise InputError(f"{where}: unknown student {student!r} (not among the submissions)")
        if target not in checks and target not in questions:
            raise InputError(f"{where}: {target!r} is neither a check nor a question of "
                             f"{a.name}")
        try:
            points = float(row["points"])
        except (TypeError, ValueError):
            points = math.nan
        if not (math.isfinite(points) and points >= 0):
            raise InputError(f"{where}: points: expected a non-negative number, got "
                             f"{row['points']!r}")
        reason, who = (row["reason"] or "").strip(), (row["who"] or "").strip()
        if not reason or not who:
            raise InputError(f"{where}: an override needs a reason and who made it")
        if (student, target) in seen:
            raise InputError(f"{where}: {student} {target} is overridden already on line "
                             f"{seen[student, target]}")
        seen[student, target] = line
        is_check = target in checks
        out.append(Override(student, target, checks[target].question if is_check else target,
                            points, reason, who, line, is_check))
    return out


def entries(log: SubmissionLog, overrides: list[Override]) -> tuple[dict[str, object], ...]:
    """The log's ``overrides``: each with the delta it makes to the automatic score."""
    out = []
    for o in overrides:
        if o.student != log.student:
            continue
        if o.is_check:
            auto = sum(c.score for c in log.checks if c.name == o.target)
        else:
            auto = sum(c.score for c in log.checks if c.question == o.target)
        out.append({"target": o.target, "question": o.question, "points": o.points,
                    "auto": round(auto, 4), "delta": round(o.points - auto, 4),
                    "reason": o.reason, "who": o.who, "line": o.line})
    return tuple(out)
