"""Canvas's gradebook import CSV, keyed by the IDs of a roster CSV.

Canvas imports a CSV whose first five columns are ``Student, ID, SIS User ID, SIS Login ID,
Section`` (ID is Canvas's user id, the key it matches on), then one column per assignment, with
an optional ``Points Possible`` row under the header. Points are the log's score: after
overrides and the late penalty. The roster (``student`` = the folder name under submissions/,
``id``, optional ``name``, ``sis_user_id``, ``sis_login_id``, ``section``) says who is who; a roster
student with no submission keeps a row with an empty cell, and a submission with no roster
entry is listed: neither is dropped silently.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from grader.errors import InputError
from grader.files import read_capped
from grader.logfile import SubmissionLog

HEADER = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
ROSTER_COLUMNS = ("student", "id")


@dataclass(frozen=True)
class RosterEntry:
    student: str
    id: str
    name: str = ""
    sis_user_id: str = ""
    sis_login_id: str = ""
    section: str = ""


@dataclass(frozen=True)
class Export:
    csv: str
    no_submission: tuple[str, ...]  # on the roster, no log
    not_on_roster: tuple[str, ...]  # a log, no roster entry


def read_roster(path: Path) -> list[RosterEntry]:
    text = read_capped(path, 8 * 2**20, what="roster").decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in ROSTER_COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
        raise InputError(f"{path}: line 1: missing column(s) {', '.join(missing)}")
    out: list[RosterEntry] = []
    seen: dict[str, int] = {}
    for row in reader:
        def get(k: str, row: dict[str, str | None] = row) -> str:
            return (row.get(k) or "").strip()
        where = f"{path}: line {reader.line_num}"
        if not get("student") or not get("id"):
            raise InputError(f"{where}: student and id must not be empty")
        if get("student") in seen:
            raise InputError(f"{where}: {get('student')} is on line {seen[get('student')]} already")
        seen[get("student")] = reader.line_num
        out.append(RosterEntry(get("student"), get("id"), get("name"), get("sis_user_id"),
                               get("sis_login_id"), get("section")))
    return out


def export(logs: list[SubmissionLog], roster: list[RosterEntry], *, column: str) -> Export:
    by_student = {log.student: log for log in logs}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*HEADER, column])
    top = max((log.max_score for log in logs), default=0.0)
    w.writerow(["Points Possible", "", "", "", "", f"{top:g}"])
    for r in roster:
        log = by_student.get(r.student)
        w.writerow([r.name or r.student, r.id, r.sis_user_id, r.sis_login_id, r.section,
                    f"{log.score:g}" if log is not None else ""])
    on_roster = {r.student for r in roster}
    return Export(buf.getvalue(),
                  no_submission=tuple(r.student for r in roster if r.student not in by_student),
                  not_on_roster=tuple(sorted(s for s in by_student if s not in on_roster)))
