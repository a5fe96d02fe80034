"""One submission's way from its folder to its ``SubmissionLog``, in one direction.

    open_submission   choose the notebook (the one rule), read it once, key it
    reusable          the log already written from exactly this, if any (resume, rerun)
    execute           stage a private copy, run it through an Executor
    make_log          execution + expected values + truth -> checks -> SubmissionLog

``make_log`` is shared by every grading path (``grader run``, ``grader check``,
``grader-check`` and the in-notebook check), so the same code gives the same log.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import math
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from grader import logfile
from grader.errors import InputError, SandboxError
from grader.execution import Execution, Executor
from grader.files import atomic_write, figure_name
from grader.grading.plan import GradingPlan
from grader.grading.score import grade
from grader.logfile import SubmissionLog
from grader.spec import Assignment
from grader.submission import Notebook, cell_label, choose_notebook, code_cell_number, read_notebook


@dataclass(frozen=True)
class Graded:
    """A submission's log, and whether it was reused from an earlier run."""

    log: SubmissionLog
    reused: bool = False


class Cancelled(Exception):
    """The run was interrupted while this submission ran: nothing was written for it."""


@dataclass
class RunContext:
    """What every submission of one run shares. Holds expected values: grader side only."""

    plan: GradingPlan
    expected: dict[str, Any]
    out_dir: Path
    fingerprint: str
    force: bool = False
    write: bool = True
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def assignment(self) -> Assignment:
        return self.plan.assignment


@dataclass(frozen=True)
class Submission:
    """A student's folder, its notebook chosen and read (or why not), and its cache key."""

    student: str
    folder: Path
    path: Path | None
    notebook: Notebook | None
    cache_key: str = ""
    errors: tuple[dict[str, Any], ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def unavailable(self) -> str:
        return str(self.errors[0]["message"]) if self.notebook is None and self.errors else ""


def open_submission(ctx: RunContext, folder: Path, *, notebook_path: Path | None = None
                    ) -> Submission:
    """Choose and read the notebook, once. ``notebook_path`` chooses it instead of the rule."""
    a = ctx.assignment
    student = folder.name
    notes: tuple[str, ...] = ()
    if notebook_path is None:
        choice = choose_notebook(folder, a.notebook)
        if choice.path is None:
            return Submission(student, folder, None, None,
                              errors=({"kind": choice.kind, "message": choice.message},))
        path = choice.path
        notes = (choice.note,) if choice.note else ()
    else:
        path = notebook_path
    try:
        nb = read_notebook(path)
    except InputError as exc:
        message = str(exc).replace(f"{folder}/", "")
        return Submission(student, folder, path, None, notes=notes,
                          errors=({"kind": "invalid_notebook", "message": message},))
    key = hashlib.sha256(f"{nb.sha256}:{ctx.fingerprint}".encode()).hexdigest()[:24]
    return Submission(student, folder, path, nb, key, notes=notes)


def reusable(ctx: RunContext, sub: Submission) -> SubmissionLog | None:
    """The student's log when it was made from exactly this submission, unless forced."""
    if ctx.force or not ctx.write or sub.notebook is None:
        return None
    previous = logfile.read_in(ctx.out_dir, sub.student)
    return previous if previous is not None and previous.cache_key == sub.cache_key else None


def execute(ctx: RunContext, sub: Submission, executor: Executor) -> Execution:
    assert sub.notebook is not None
    workdir = ctx.plan.stage(sub.folder)
    try:
        execution = executor.run(workdir=workdir, cells=list(sub.notebook.cells),
                                 probes_source=ctx.assignment.probes_source,
                                 requests=ctx.plan.requests)
    except SandboxError:
        if ctx.cancel.is_set():
            raise Cancelled(sub.student) from None
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if ctx.cancel.is_set():
        raise Cancelled(sub.student)
    return execution


def grade_submission(ctx: RunContext, sub: Submission, executor: Executor | None) -> Graded:
    """Reuse, or execute and log; ``executor`` may be None only when nothing has to run."""
    started = time.perf_counter()
    previous = reusable(ctx, sub)
    if previous is not None:
        return Graded(previous, reused=True)
    execution = None
    if sub.notebook is not None:
        if executor is None:
            raise RuntimeError("no executor for a submission that needs one")
        execution = execute(ctx, sub, executor)
    log = make_log(ctx.assignment, student=sub.student, notebook_name=ctx.assignment.notebook,
                   notebook=sub.notebook, execution=execution, expected=ctx.expected,
                   truth=ctx.plan.truth, errors=sub.errors, notes=sub.notes,
                   cache_key=sub.cache_key, started=started,
                   figures_dir=ctx.out_dir / sub.student if ctx.write else None)
    if ctx.write:
        logfile.write_in(ctx.out_dir, log)
    return Graded(log)


# A full disk or a read-only output folder stops the run (one line, exit 3): no other
# student could be logged either.
_OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EDQUOT})


def grade_or_log_failure(ctx: RunContext, folder: Path, executor: Executor | None) -> Graded:
    """``grade_submission`` for one folder; any failure of this one student (a notebook that
    breaks a reader, a frame that breaks the channel, a bug they trigger) becomes their log,
    "could not grade: …" naming them, so the batch goes on. Interruptions, a dead worker and
    an unwritable output folder are the run's, not the student's: they propagate."""
    started = time.perf_counter()
    try:
        return grade_submission(ctx, open_submission(ctx, folder), executor)
    except (Cancelled, SandboxError):
        raise
    except OSError as exc:
        if exc.errno in _OUTPUT_ERRNOS:
            raise
        failure: Exception = exc
    except Exception as exc:  # noqa: BLE001 (this is the batch's last line of defence)
        if ctx.cancel.is_set():
            # An interrupt ends runs in flight however their executor reports it (Dask raises
            # its own cancellation): that is the run's, and the student keeps no log.
            raise Cancelled(folder.name) from exc
        failure = exc
    detail = str(failure).replace(f"{folder}/", "")[:500] or type(failure).__name__
    message = f"could not grade {folder.name}: {type(failure).__name__}: {detail}"
    log = make_log(ctx.assignment, student=folder.name, notebook_name=ctx.assignment.notebook,
                   notebook=None, execution=None, expected=ctx.expected, truth=ctx.plan.truth,
                   errors=({"kind": "could_not_grade", "message": message},), started=started)
    if ctx.write:
        logfile.write_in(ctx.out_dir, log)
    return Graded(log)


def make_log(a: Assignment, *, student: str, notebook_name: str, notebook: Notebook | None,
             execution: Execution | None, expected: dict[str, Any],
             truth: dict[str, Any] | None = None, errors: tuple[dict[str, Any], ...] = (),
             notes: tuple[str, ...] = (), cache_key: str = "", started: float | None = None,
             figures_dir: Path | None = None, protections: dict[str, str] | None = None,
             unavailable: str = "") -> SubmissionLog:
    """The log of one graded notebook: every grading path ends here."""
    cells_src = notebook.cells if notebook is not None else ()
    if not unavailable and execution is None:
        unavailable = str(errors[0]["message"]) if errors else "the notebook could not be run"
    checks = grade(assignment=a, execution=execution, expected=expected, truth=truth,
                   unavailable=unavailable, cells=cells_src)
    all_errors = list(errors)
    all_notes = list(notes)
    cells: list[dict[str, Any]] = []
    if execution is not None and notebook is not None:
        all_errors.extend(_execution_errors(execution, notebook))
        all_notes.extend(execution.notes)
        cells = _cells(execution, notebook, figures_dir)
    total = time.perf_counter() - started if started is not None else 0.0
    return SubmissionLog(
        assignment=a.name, student=student, notebook=notebook_name,
        notebook_sha256=notebook.sha256 if notebook is not None else None,
        checks=checks, errors=tuple(all_errors), notes=tuple(all_notes), cells=tuple(cells),
        timings={"total_seconds": total,
                 "execute_seconds": execution.seconds if execution else 0.0},
        protections=dict(protections if protections is not None
                         else execution.protections if execution else {}),
        cache_key=cache_key,
        records=_records(a, execution) if a.records else None)


def _records(a: Assignment, execution: Execution | None) -> dict[str, Any]:
    """What the notebook reported about itself, as plain JSON; never scored."""
    out: dict[str, Any] = {}
    for record in a.records:
        answer = execution.answers.get(record.request_key) if execution else None
        if answer is not None and answer.ok:
            out[record.name] = _jsonable(answer.value)
        else:
            out[record.name] = {"unavailable": (answer.error or {}).get("evalue", "not run")
                                if answer else "not run"}
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _execution_errors(execution: Execution, nb: Notebook) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    for cell in execution.cells:
        if cell.status in ("error", "timeout", "killed") and cell.error:
            verb = {"error": f"raised {cell.error.get('ename', '')}", "timeout": "timed out",
                    "killed": "was killed"}[cell.status]
            errors.append({"kind": f"cell_{cell.status}",
                           "cell": code_cell_number(nb.cells, cell.index),
                           "message": f"{cell_label(nb.cells, cell.index)} {verb}: "
                                      f"{cell.error.get('evalue', '')}"})
    errors.extend({"kind": "sandbox", "message": e} for e in execution.events)
    return errors


def _cells(execution: Execution, nb: Notebook, student_out: Path | None) -> list[dict[str, Any]]:
    """Cell outcomes for the log, numbered among code cells; figures are written as PNG files
    beside it (checked PNGs)."""
    if student_out is not None:
        shutil.rmtree(student_out / "figures", ignore_errors=True)
    cells = []
    for cell in execution.cells:
        number = code_cell_number(nb.cells, cell.index)
        figures = []
        for k, data in enumerate(cell.figures, start=1):
            try:
                png = base64.b64decode(data, validate=True)
            except ValueError:
                continue
            if not png.startswith(b"\x89PNG\r\n\x1a\n"):
                continue
            name = figure_name(number, k)
            if student_out is not None:
                atomic_write(student_out / name, png)
            figures.append(name)
        cells.append({"cell": number, "label": cell_label(nb.cells, cell.index),
                      "status": cell.status, "seconds": round(cell.seconds, 4),
                      "figures": figures, "stdout": cell.stdout[-4000:]})
    return cells
