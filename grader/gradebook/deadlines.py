"""Due dates, grace, the late penalty's rule, per-student extensions, and when a submission was
made.

The rule comes from the assignment's YAML (``deadline:``) or a course file (``course.yaml`` at
the project's root, ``deadlines: {<assignment>: {...}}``), never both. A submission's time is, in
this order: Gradescope's ``submission_metadata.json`` (``created_at``; from a folder the
platform writes, ``grader run --submission-metadata``), the student repository's last commit, the notebook file's modification time; the log says which. Late work is never
zeroed silently: the penalty is a fraction of the score, written with the rule that produced it.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

from grader.course import COURSE_FILE
from grader.errors import InputError, SpecError
from grader.files import read_capped
from grader.spec import Assignment

METADATA_NAME = "submission_metadata.json"
EXTENSIONS_NAME = "extensions.csv"
MAX_CSV_BYTES = 8 * 2**20
# The shape assignment.yaml's `deadline:` takes (and course.yaml's `deadlines.<assignment>`):
# what a JSON Schema of the spec must accept.
DEADLINE_SHAPE: dict[str, Any] = {
    "type": "object",
    "required": ["due"],
    "additionalProperties": False,
    "properties": {
        "due": {"type": "string", "description": "ISO 8601 with a UTC offset, e.g. "
                                                 "2026-12-04T23:59:00-08:00"},
        "grace_minutes": {"type": "number", "minimum": 0, "default": 0},
        "penalty_percent_per_day": {"type": "number", "minimum": 0, "maximum": 100,
                                    "default": 10},
        "max_penalty_percent": {"type": "number", "minimum": 0, "maximum": 100, "default": 100},
    },
}


@dataclass(frozen=True)
class DeadlineRule:
    due: datetime
    grace: timedelta = timedelta(0)
    percent_per_day: float = 10.0
    max_percent: float = 100.0
    where: str = ""  # the file and field it came from, for messages

    def describe(self) -> str:
        grace = f", {self.grace.total_seconds() / 60:g} min grace" if self.grace else ""
        return (f"due {self.due.isoformat()}{grace}; {self.percent_per_day:g}% per day late "
                f"(each started day), at most {self.max_percent:g}%")


def _when(text: object, where: str) -> datetime:
    if not isinstance(text, str):
        raise SpecError(f"{where}: expected an ISO 8601 date and time, got {text!r}")
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SpecError(f"{where}: expected an ISO 8601 date and time, got {text!r}") from None
    if value.tzinfo is None:  # a time without its zone means different things on each machine
        raise SpecError(f"{where}: {text!r} has no UTC offset (write e.g. {text}-08:00 or {text}Z)")
    return value


def _number(d: dict[str, Any], key: str, where: str, default: float, top: float) -> float:
    value = d.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= top:
        raise SpecError(f"{where}.{key}: expected a number from 0 to {top:g}, got {value!r}")
    return float(value)


def parse_rule(d: object, where: str) -> DeadlineRule:
    """``d`` as DEADLINE_SHAPE says; errors name ``where`` (file: field)."""
    if not isinstance(d, dict):
        raise SpecError(f"{where}: expected a mapping")
    unknown = sorted(set(d) - set(DEADLINE_SHAPE["properties"]))
    if unknown:
        raise SpecError(f"{where}.{unknown[0]}: unknown field (it takes "
                        f"{', '.join(DEADLINE_SHAPE['properties'])})")
    if "due" not in d:
        raise SpecError(f"{where}.due: missing")
    return DeadlineRule(
        due=_when(d["due"], f"{where}.due"),
        grace=timedelta(minutes=_number(d, "grace_minutes", where, 0, 7 * 24 * 60)),
        percent_per_day=_number(d, "penalty_percent_per_day", where, 10, 100),
        max_percent=_number(d, "max_penalty_percent", where, 100, 100), where=where)


def rule_for(a: Assignment, root: Path | None) -> DeadlineRule | None:
    """The assignment's rule: its YAML's ``deadline``, else the course file's; None if neither."""
    spec_file = a.directory / "assignment.yaml"
    course: dict[str, Any] = {}
    course_path = root / COURSE_FILE if root is not None else None
    if course_path is not None and course_path.is_file():
        try:
            loaded = yaml.safe_load(course_path.read_text())
        except yaml.YAMLError as exc:
            raise SpecError(f"{course_path}: invalid YAML: {exc}") from None
        deadlines = loaded.get("deadlines", {}) if isinstance(loaded, dict) else None
        if not isinstance(deadlines, dict):
            raise SpecError(f"{course_path}: deadlines: expected a mapping of assignment names")
        course = deadlines
    if a.deadline is not None and a.name in course:
        raise SpecError(f"{spec_file}: deadline: also set in {course_path} "
                        f"(deadlines.{a.name}); keep one")
    if a.deadline is not None:
        return parse_rule(a.deadline, f"{spec_file}: deadline")
    if a.name in course:
        return parse_rule(course[a.name], f"{course_path}: deadlines.{a.name}")
    return None


def read_extensions(path: Path, students: set[str]) -> dict[str, datetime | timedelta]:
    """``student,until`` (an ISO time) or ``student,days`` rows (optional ``reason``): a new due
    date or more days. A student not among the submissions is an error naming the line."""
    text = read_capped(path, MAX_CSV_BYTES, what="extensions file").decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    fields = set(reader.fieldnames or ())
    if "student" not in fields or not fields & {"until", "days"}:
        raise InputError(f"{path}: line 1: expected the columns student and until or days "
                         f"(got {', '.join(reader.fieldnames or ()) or 'none'})")
    out: dict[str, datetime | timedelta] = {}
    for row in reader:
        where = f"{path}: line {reader.line_num}"
        student = (row.get("student") or "").strip()
        if student not in students:
            raise InputError(f"{where}: unknown student {student!r} (not among the submissions)")
        until, days = (row.get("until") or "").strip(), (row.get("days") or "").strip()
        if bool(until) == bool(days):
            raise InputError(f"{where}: give until or days for {student}, not both or neither")
        if until:
            try:
                out[student] = _when(until, f"{where}: until")
            except SpecError as exc:
                raise InputError(str(exc)) from None
        else:
            try:
                n = float(days)
            except ValueError:
                n = -1.0
            if not (math.isfinite(n) and n >= 0):
                raise InputError(f"{where}: days: expected a non-negative number, got {days!r}")
            out[student] = timedelta(days=n)
    return out


def _git_commit_time(folder: Path) -> tuple[datetime, str] | None:
    """The last commit's committer time, read with ``git cat-file`` (which runs no hooks,
    pager, signature program or filter a hostile repository's config could name)."""
    if not (folder / ".git").exists():
        return None
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
           "GIT_TERMINAL_PROMPT": "0"}
    try:
        r = subprocess.run(["git", "-C", str(folder), "-c", "core.fsmonitor=false",
                            "--no-pager", "cat-file", "commit", "HEAD"],
                           capture_output=True, text=True, timeout=10, env=env)
        sha = subprocess.run(["git", "-C", str(folder), "-c", "core.fsmonitor=false",
                              "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10, env=env).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    for line in r.stdout.splitlines() if r.returncode == 0 else ():
        if line.startswith("committer "):
            try:
                seconds, offset = line.rsplit(" ", 2)[-2:]
                sign = -1 if offset.startswith("-") else 1
                tz = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
                return datetime.fromtimestamp(int(seconds), tz), f"last commit {sha} of the repository"
            except (ValueError, IndexError):
                return None
    return None


def submission_time(folder: Path, notebook: str,
                    metadata_dir: Path | None = None) -> tuple[datetime, str]:
    """(when, how that was found): Gradescope's metadata, else the last commit, else the file
    time of the notebook (else of the folder).

    The metadata is read from ``metadata_dir/<student>/`` only, never from the student's own
    folder: a file there is the student's and could say any time."""
    meta = (metadata_dir / folder.name / METADATA_NAME if metadata_dir is not None
            else None)
    if meta is not None and meta.is_file() and not meta.is_symlink():
        try:
            data = json.loads(read_capped(meta, 2**20, what="submission metadata"))
            return (_when(data["created_at"], f"{meta}: created_at"),
                    f"{METADATA_NAME} (created_at)")
        except (ValueError, KeyError, TypeError, SpecError, InputError):
            pass  # unreadable: the next source says when
    commit = _git_commit_time(folder)
    if commit is not None:
        return commit
    path = folder / notebook
    target = path if path.is_file() and not path.is_symlink() else folder
    mtime = datetime.fromtimestamp(target.stat().st_mtime, timezone.utc)
    return mtime, f"file time of {target.name}"


def penalty(rule: DeadlineRule, submitted: datetime,
            extension: datetime | timedelta | None = None) -> dict[str, Any] | None:
    """The log's ``penalty`` (fraction and the rule that produced it), None when on time."""
    due = rule.due
    note = ""
    if isinstance(extension, datetime):
        due, note = extension, f"; extended to {extension.isoformat()}"
    elif isinstance(extension, timedelta):
        due, note = due + extension, f"; extended by {extension.total_seconds() / 86400:g} day(s)"
    late = submitted - due
    if late <= timedelta(0):
        return None
    hours = round(late.total_seconds() / 3600, 2)
    if late <= rule.grace:
        return {"fraction": 0.0, "late_hours": hours,
                "rule": f"{rule.describe()}{note}: {hours:g} h late, within grace: no penalty"}
    days = math.ceil(late / timedelta(days=1))
    percent = min(rule.max_percent, days * rule.percent_per_day)
    return {"fraction": round(percent / 100, 6), "late_hours": hours, "days_late": days,
            "rule": f"{rule.describe()}{note}: {hours:g} h late, {days} day(s): {percent:g}% off"}
