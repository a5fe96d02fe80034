"""A class at a glance, from a folder of ``submission_log.json`` files (``grader report``).

Everything here reads logs only: it never grades, so it is instant and works on a copy of the
grades (a CI artifact, a colleague's folder) without the assignment or the reference.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from grader import logfile
from grader.errors import InputError
from grader.logfile import SubmissionLog
from grader.reports.feedback import md

# Error kinds that mean "this notebook did not run as written" (grading.pipeline).
TROUBLE_KINDS = ("cell_error", "cell_timeout", "cell_killed", "invalid_notebook",
                 "missing_notebook", "sandbox")
BINS = 10


@dataclass(frozen=True)
class ClassReport:
    logs: list[SubmissionLog]
    questions: list[str]
    stale: tuple[str, ...] = ()  # students set aside by `grader run` (logfile.set_aside_stale)

    @property
    def max_score(self) -> float:
        return max((log.max_score for log in self.logs), default=0.0)

    def histogram(self, bins: int = BINS) -> list[tuple[float, float, int]]:
        """(low, high, count) over [0, max_score]; the last bin includes full marks."""
        top = self.max_score
        if top <= 0:
            return []
        width = top / bins
        counts = [0] * bins
        for log in self.logs:
            k = min(int(log.score / width), bins - 1)
            counts[max(k, 0)] += 1
        return [(round(i * width, 4), round((i + 1) * width, 4), n) for i, n in enumerate(counts)]

    def failed_checks(self) -> list[tuple[str, str, int]]:
        """(question, check, how many failed it), most failed first, then by name."""
        failed: Counter[tuple[str, str]] = Counter()
        for log in self.logs:
            for c in log.checks:
                if not c.passed:
                    failed[(c.question, c.name)] += 1
        return sorted(((q, n, k) for (q, n), k in failed.items()), key=lambda t: (-t[2], t[1]))

    def hidden_failures(self) -> list[tuple[str, str, str]]:
        """(student, check, full explanation) of every failed hidden check: what the student
        was not shown, for answering a regrade request without rerunning anything."""
        return [(log.student, c.name, c.detail) for log in self.logs for c in log.checks
                if c.detail and not c.passed]

    def troubled(self) -> list[tuple[str, list[str], str]]:
        """(student, error kinds, first message) for notebooks that did not run cleanly."""
        out = []
        for log in self.logs:
            errors = [e for e in log.errors if e.get("kind") in TROUBLE_KINDS]
            if errors:
                kinds = sorted({str(e["kind"]) for e in errors})
                out.append((log.student, kinds, str(errors[0].get("message", ""))))
        return out


def load(grades: Path) -> ClassReport:
    """Every readable log under ``grades/<student>/``, sorted by student."""
    if not grades.is_dir():
        raise InputError(f"{grades}: no such folder")
    logs = list(logfile.iter_logs(grades))
    if not logs:
        raise InputError(f"{grades}: no submission logs (expected {grades}/<student>/submission_log.json)")
    questions: list[str] = []
    for log in logs:
        for q in log.questions():
            if q not in questions:
                questions.append(q)
    stale_dir = grades / logfile.STALE_DIR
    stale = tuple(sorted(p.parent.name for p in stale_dir.glob(f"*/{logfile.LOG_NAME}")))
    return ClassReport(logs, questions, stale)


def _g(x: Any) -> str:
    return f"{float(x):g}"


def print_overview(ov: ClassReport, console: Console) -> None:
    scores = [log.score for log in ov.logs]
    console.print(f"[bold]{len(ov.logs)} submissions[/], max {_g(ov.max_score)} points: "
                  f"mean {statistics.fmean(scores):.2f}, median {_g(statistics.median(scores))}, "
                  f"full marks {sum(1 for s in scores if s >= ov.max_score > 0)}")
    hist = Table(title="score distribution", show_header=True, title_justify="left")
    hist.add_column("points", justify="right")
    hist.add_column("students", justify="right")
    hist.add_column("")
    bins = ov.histogram()
    widest = max((n for _, _, n in bins), default=0)
    for k, (lo, hi, n) in enumerate(bins):
        bracket = "]" if k == len(bins) - 1 else ")"
        bar = "█" * round(30 * n / widest) if widest else ""
        hist.add_row(f"[{_g(lo)}, {_g(hi)}{bracket}", str(n), f"[green]{bar}[/]")
    console.print(hist)
    failed = ov.failed_checks()
    if failed:
        t = Table(title="checks most often failed", show_header=True, title_justify="left")
        for col in ("question", "check", "failed"):
            t.add_column(col, justify="right" if col == "failed" else "left")
        for q, name, k in failed:
            t.add_row(Text(q), Text(name), f"{k} / {len(ov.logs)}")
        console.print(t)
    if ov.stale:
        console.print(f"not counted: {len(ov.stale)} stale log(s) of students no longer among "
                      f"the submissions, in {logfile.STALE_DIR}/ ({', '.join(ov.stale)})",
                      markup=False)
    hidden = ov.hidden_failures()
    if hidden:  # plain lines, not a table: a got | expected table must keep its columns
        console.print("failed hidden checks (not shown to students):", markup=False)
        for student, name, detail in hidden:
            console.print(f"  {student}, {name}:", markup=False, highlight=False)
            for line in detail.splitlines():
                console.print(f"    {line}", markup=False, highlight=False)
    adjusted = [(log.student, o) for log in ov.logs for o in _adjustments(log)]
    if adjusted:  # the gradebook's part of the scores above (grader.gradebook), with why
        t = Table(title="overrides and late penalties", show_header=True, title_justify="left")
        for col in ("student", "points", "why"):
            t.add_column(col, justify="right" if col == "points" else "left")
        for student, (points, why) in adjusted:
            t.add_row(Text(student), f"{points:+g}", Text(why))
        console.print(t)
    trouble = ov.troubled()
    if trouble:
        t = Table(title="notebooks that did not run cleanly", show_header=True, title_justify="left")
        for col in ("student", "kinds", "first error"):
            t.add_column(col)
        for student, kinds, message in trouble:
            t.add_row(Text(student), ", ".join(kinds), Text(message))
        console.print(t)


def _adjustments(log: SubmissionLog) -> list[tuple[float, str]]:
    out = [(float(o["delta"]), f"override of {o['target']} by {o['who']}: {o['reason']}")
           for o in log.overrides]
    if log.penalty_points:
        out.append((-log.penalty_points, f"late: {log.penalty['rule'] if log.penalty else ''}"))
    return out


def gradebook_csv(ov: ClassReport) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["student", "score", "max_score", *ov.questions])
    for log in ov.logs:
        per_q = log.questions()
        writer.writerow([log.student, _g(log.score), _g(log.max_score),
                         *(_g(per_q.get(q, {}).get("score", 0)) for q in ov.questions)])
    return buf.getvalue()


def markdown(ov: ClassReport) -> str:
    """A job-summary table: one row per student, then the most failed checks."""
    n = len(ov.logs)
    full = sum(1 for log in ov.logs if log.full_marks)
    lines = [f"### {md(ov.logs[0].assignment)}: {n} submissions, {full} with full marks",
             "", "| student | score | " + " | ".join(md(q) for q in ov.questions) + " | errors |",
             "|---|---|" + "---|" * len(ov.questions) + "---|"]
    for log in ov.logs:
        per_q = log.questions()
        cells = [_g(per_q.get(q, {}).get("score", 0)) for q in ov.questions]
        kinds = sorted({str(e.get("kind", "")) for e in log.errors})
        lines.append(f"| {md(log.student)} | {_g(log.score)} / {_g(log.max_score)} | "
                     + " | ".join(cells) + f" | {md(', '.join(kinds))} |")
    failed = ov.failed_checks()
    if failed:
        lines += ["", "| most failed check | question | failed |", "|---|---|---|"]
        lines += [f"| {md(name)} | {md(q)} | {k} / {n} |" for q, name, k in failed[:10]]
    return "\n".join(lines) + "\n"


def write_gradebook_exports(ov: ClassReport, console: Console, *, leaderboard_file: Path | None,
                            pseudonyms: Path | None, canvas_file: Path | None,
                            roster: Path | None, canvas_column: str | None) -> None:
    """``--leaderboard`` and ``--canvas`` (grader.gradebook): pages and files from the logs."""
    from grader.files import atomic_write_text
    from grader.gradebook import canvas, leaderboard

    if (canvas_file is None) != (roster is None):
        raise InputError("--canvas and --roster go together (the roster keys students to IDs)")
    if pseudonyms is not None and leaderboard_file is None:
        raise InputError("--pseudonyms needs --leaderboard")
    for path, option in ((leaderboard_file, "--leaderboard"), (canvas_file, "--canvas")):
        if path is not None and not path.parent.is_dir():
            raise InputError(f"{option} {path}: folder {path.parent} does not exist")
    if leaderboard_file is not None:
        names = leaderboard.read_pseudonyms(pseudonyms) if pseudonyms is not None else None
        if not any(log.leaderboard for log in ov.logs):
            raise InputError("no log has leaderboard values (does the assignment declare "
                             "leaderboard: entries? run grader run again to add them)")
        atomic_write_text(leaderboard_file, leaderboard.page(ov.logs, pseudonyms=names))
        console.print(f"wrote {leaderboard_file}", markup=False, highlight=False)
    if canvas_file is not None and roster is not None:
        result = canvas.export(ov.logs, canvas.read_roster(roster),
                               column=canvas_column or ov.logs[0].assignment)
        atomic_write_text(canvas_file, result.csv)
        for student in result.no_submission:
            console.print(f"roster mismatch: {student} is on {roster} but has no submission "
                          "(row kept, cell empty)", markup=False, highlight=False)
        for student in result.not_on_roster:
            console.print(f"roster mismatch: {student} has a submission but is not on {roster} "
                          "(not in the Canvas file: add them to the roster)", markup=False,
                          highlight=False)
        console.print(f"wrote {canvas_file}", markup=False, highlight=False)


def attempts(submissions: Path) -> dict[str, list[dict[str, Any]]]:
    """Each student's check attempts (``grader.student.submit``): the JSON-lines log beside the
    notebook in ``submissions/<student>/``, else the one inside their upload zip. Read as data
    (size-capped, malformed lines skipped), never unpickled: it comes from the student."""
    import zipfile

    from grader.files import read_capped
    from grader.student import submit

    if not submissions.is_dir():
        raise InputError(f"--attempts {submissions}: no such folder")
    out: dict[str, list[dict[str, Any]]] = {}
    for folder in sorted(p for p in submissions.iterdir() if p.is_dir() and not p.is_symlink()):
        texts: list[str] = []
        for path in sorted(folder.glob(f"*{submit.ATTEMPTS_SUFFIX}")):
            try:
                texts.append(read_capped(path, submit.MAX_ATTEMPTS_BYTES, what="attempts log")
                             .decode("utf-8", "replace"))
            except InputError:
                continue
        if not texts:
            for path in sorted(folder.glob("*_submission.zip")):
                try:
                    with zipfile.ZipFile(path) as zf:
                        for info in zf.infolist():
                            if info.filename.endswith(submit.ATTEMPTS_SUFFIX) \
                                    and info.file_size <= submit.MAX_ATTEMPTS_BYTES:
                                texts.append(zf.read(info).decode("utf-8", "replace"))
                except (OSError, zipfile.BadZipFile):
                    continue
        entries = [a for text in texts for a in submit.read_attempts(text)]
        if entries:
            out[folder.name] = entries
    return out


def print_attempts(found: dict[str, list[dict[str, Any]]], console: Console) -> None:
    """One row per student: attempts per question, first and last, the last score."""
    t = Table(title="check attempts (the students' own checks)", show_header=True,
              title_justify="left")
    for col in ("student", "attempts", "per question", "first", "last"):
        t.add_column(col)
    for student, entries in found.items():
        per_q = Counter(str(a["question"]) for a in entries)
        t.add_row(Text(student), str(len(entries)),
                  Text(", ".join(f"{q}: {n}" for q, n in sorted(per_q.items()))),
                  Text(str(entries[0]["time"])), Text(str(entries[-1]["time"])))
    console.print(t)
