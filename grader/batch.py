"""Grade a folder of submissions: discover, stage, execute in parallel, grade, write, summarise.

``GradingSession`` (session.py) drives these steps behind ``grader run``. The expected values
come first (the reference notebook through the very same sandbox and probes); then each
submission runs in a sandbox forked from one warm worker, ``jobs`` at a time. A
submission whose notebook, assignment, reference and grader version are unchanged reuses its
existing log unless ``force`` is set, so running again after an interruption resumes where it
stopped.
"""

from __future__ import annotations

import hashlib
import json
import queue
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from grader import __version__, report, sandbox, wire
from grader.errors import InputError, SandboxError, SpecError
from grader.submission import (MAX_NOTEBOOK_BYTES, MAX_STAGED_BYTES, Notebook, cell_label,
                               choose_notebook, code_cell_number, read_notebook, stage,
                               student_dirs)
from grader.execute import Execution, Worker
from grader.grade import grade
from grader.spec import Assignment

if TYPE_CHECKING:  # not at run time: grader.cluster imports Dask
    from grader.cluster import Executor

# Re-exported: the submission module owns discovery, choosing, reading and staging.
__all__ = ["MAX_NOTEBOOK_BYTES", "MAX_STAGED_BYTES", "Notebook", "read_notebook", "stage",
           "student_dirs"]


def limits_for(assignment: Assignment, *, threads: int = 1) -> sandbox.Limits:
    """The sandbox's limits; its times are CPU seconds (see worker._run_session)."""
    probes = len(assignment.checks) + len(assignment.records)
    cpu = (assignment.notebook_seconds + probes * assignment.probe_seconds) * max(1, threads) + 60
    return sandbox.Limits(cell_seconds=assignment.cell_seconds,
                          notebook_seconds=assignment.notebook_seconds,
                          probe_seconds=assignment.probe_seconds,
                          memory_mb=assignment.memory_mb, threads=max(1, threads),
                          cpu_seconds=int(cpu))


def requests_for(assignment: Assignment, extra_args: dict[str, dict[str, Any]] | None = None
                 ) -> dict[str, tuple[str, dict[str, Any]]]:
    requests: dict[str, tuple[str, dict[str, Any]]] = {}
    for check in assignment.checks:
        args = {**check.args, **(extra_args or {}).get(check.request_key, {})}
        requests[check.request_key] = (check.probe, args)
    for record in assignment.records:
        requests[record.request_key] = (record.probe, record.args)
    return requests


# -- expected values -----------------------------------------------------------------------------

def expected_values(*, assignment: Assignment, reference: Path, worker: Worker,
                    cache_dir: Path | None, stage_extra: Callable[[Path], None] | None = None,
                    extra_args: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Run the reference through the checks; every check must pass there, or the spec is wrong."""
    if not reference.is_file():
        raise InputError(f"{reference}: reference notebook not found")
    nb = read_notebook(reference)
    key = hashlib.sha256(json.dumps([nb.sha256, assignment.fingerprint(), report.versions(),
                                     report.code_fingerprint()],
                                    sort_keys=True).encode()).hexdigest()[:16]
    cache = cache_dir / f"{assignment.name}-{key}.json" if cache_dir else None
    if cache is not None and cache.is_file():
        return {k: wire.decode_value(v) for k, v in json.loads(cache.read_text()).items()}
    workdir = _stage_single(reference, stage_extra)
    try:
        execution = worker.run(workdir=workdir, cells=list(nb.cells),
                               probes_source=assignment.probes_source,
                               requests=requests_for(assignment, extra_args))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    broken = [c for c in execution.cells if c.status != "ok"]
    if broken:
        c = broken[0]
        raise SpecError(f"{reference}: {cell_label(nb.cells, c.index)} of the reference did not run cleanly "
                        f"({c.status}: {(c.error or {}).get('evalue', '')})")
    values: dict[str, Any] = {}
    for check in assignment.checks:
        answer = execution.answers.get(check.request_key)
        if answer is None or not answer.ok:
            why = (answer.error or {}).get("evalue", "no answer") if answer else "no answer"
            raise SpecError(f"{reference}: the reference fails check {check.name!r} ({why})")
        values[check.request_key] = answer.value
    if cache is not None:
        report.atomic_write(cache, json.dumps({k: wire.encode_value(v) for k, v in values.items()}).encode())
    return values


def _stage_single(notebook: Path, extra: Callable[[Path], None] | None) -> Path:
    workdir = Path(tempfile.mkdtemp(prefix="grader-ref-"))
    shutil.copyfile(notebook, workdir / notebook.name)
    if extra is not None:
        extra(workdir)
    return workdir


# -- one submission -----------------------------------------------------------------------------

@dataclass
class Context:
    """What every submission of one run shares. Holds expected values: grader side only."""

    assignment: Assignment
    expected: dict[str, Any]
    out_dir: Path
    fingerprint: str
    truth: dict[str, Any] = field(default_factory=dict)
    extra_args: dict[str, dict[str, Any]] = field(default_factory=dict)
    stage_extra: Callable[[Path], None] | None = None
    force: bool = False
    cancel: threading.Event = field(default_factory=threading.Event)


def grade_one(ctx: Context, student_dir: Path, worker: Executor, *, write: bool = True,
              notebook_path: Path | None = None) -> dict[str, Any]:
    """Grade one student's folder; ``write=False`` (self-check) leaves the disk untouched.

    The notebook is the one ``submission.choose_notebook`` picks, unless ``notebook_path``
    names it. Raises ``Cancelled`` (and writes nothing) when ``ctx.cancel`` is set meanwhile.
    """
    a = ctx.assignment
    student = student_dir.name
    started = time.perf_counter()
    errors: list[dict[str, Any]] = []
    notes: list[str] = []
    execution: Execution | None = None
    sha: str | None = None
    unavailable = ""
    cache_key = ""
    choice = choose_notebook(student_dir, a.notebook) if notebook_path is None else None
    path = notebook_path if choice is None else choice.path
    if choice is not None and choice.note:
        notes.append(choice.note)
    nb = None
    if path is None:
        assert choice is not None
        unavailable = choice.message
        errors.append({"kind": choice.kind, "message": unavailable})
    else:
        try:
            nb = read_notebook(path)
        except InputError as exc:
            unavailable = str(exc).replace(f"{student_dir}/", "")
            errors.append({"kind": "invalid_notebook", "message": unavailable})
    if nb is not None and path is not None:
        sha = nb.sha256
        cache_key = _cache_key(ctx, sha)
        previous = _reusable_log(ctx, student, cache_key) if write else None
        if previous is not None:
            previous["_reused"] = True
            return previous
        workdir = stage(path.parent, extra=ctx.stage_extra)
        try:
            execution = worker.run(workdir=workdir, cells=list(nb.cells),
                                   probes_source=a.probes_source,
                                   requests=requests_for(a, ctx.extra_args))
        except SandboxError:
            if ctx.cancel.is_set():
                raise Cancelled(student) from None
            raise
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if ctx.cancel.is_set():
            raise Cancelled(student)
        errors.extend(_execution_errors(execution, nb))
        notes.extend(execution.notes)
    checks = grade(assignment=a, execution=execution, expected=ctx.expected, truth=ctx.truth,
                   unavailable=unavailable, cells=nb.cells if nb is not None else ())
    log = report.SubmissionLog(
        assignment=a.name, student=student, notebook=a.notebook, notebook_sha256=sha,
        checks=checks, errors=errors, notes=notes,
        cells=_cells(execution, nb, ctx.out_dir / student if write else None)
        if execution and nb else [],
        timings={"total_seconds": time.perf_counter() - started,
                 "execute_seconds": execution.seconds if execution else 0.0},
        protections=execution.protections if execution else {}, cache_key=cache_key,
        extra={"records": _records(a, execution)} if a.records else {})
    if write:
        report.write_log(ctx.out_dir, log)
    return log.as_dict()


class Cancelled(Exception):
    """The run was interrupted while this submission ran: nothing was written for it."""


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
    import math

    import numpy as np

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
    import base64

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
            name = f"figures/cell-{number:02d}-{k}.png"
            if student_out is not None:
                report.atomic_write(student_out / name, png)
            figures.append(name)
        cells.append({"cell": number, "label": cell_label(nb.cells, cell.index),
                      "status": cell.status, "seconds": round(cell.seconds, 4),
                      "figures": figures, "stdout": cell.stdout[-4000:]})
    return cells


# -- the batch --------------------------------------------------------------------------------

def run_parallel(ctx: Context, dirs: list[Path], *, jobs: int, limits: sandbox.Limits,
                 on_done: Callable[[dict[str, Any]], None],
                 warm: Executor | None = None,
                 worker_stats: list[dict[str, int]] | None = None) -> list[dict[str, Any]]:
    """Grade ``dirs``, ``jobs`` at a time, each in a sandbox forked from one warm worker.

    One worker serves every slot: a fork server needs no more, and one start-up (seconds of
    imports) is all a batch pays. Measured on 2 cores against one worker per job: same speed
    once running, about 3 s sooner to start. The ``warm`` executor (a local Worker or a
    ``cluster.ClusterExecutor``, started and owned by the caller) is used when given;
    otherwise one starts, only when a submission needs one, and is closed at the end.
    """
    todo: queue.Queue[Path] = queue.Queue()
    for d in dirs:
        todo.put(d)
    results: list[dict[str, Any]] = []
    lock = threading.Lock()
    failures: list[BaseException] = []
    started: list[Worker] = []
    starting = threading.Lock()  # not ``lock``: a start takes seconds, reused logs need not wait

    def the_worker() -> Executor:
        with starting:
            if warm is not None:
                return warm
            if not started:
                started.append(Worker(limits=limits, slots=jobs))
            return started[0]

    def loop() -> None:
        try:
            while not failures and not ctx.cancel.is_set():
                try:
                    d = todo.get_nowait()
                except queue.Empty:
                    return
                worker = the_worker() if _needs_worker(ctx, d) else _NoWorker()
                result = grade_one(ctx, d, worker)  # type: ignore[arg-type]
                with lock:
                    results.append(result)
                    on_done(result)
        except Cancelled:
            return
        except BaseException as exc:  # surfaced in the caller's thread
            failures.append(exc)

    # One thread more than slots: it stages the next submission and takes the first slot
    # freed, while the thread that ran there compares and writes. Sandboxes at once stay
    # ``jobs`` (Worker.run queues for a slot); the grader's own work leaves no core idle.
    threads = [threading.Thread(target=loop, daemon=True)
               for _ in range(max(1, min(jobs + 1, len(dirs))))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    except BaseException:
        # Interrupted (Ctrl-C, SIGTERM): end the sandboxes in flight, let each thread discard
        # its submission and remove its staged copy, then let the interrupt through. Logs
        # already written stay: running again resumes from them.
        ctx.cancel.set()
        with starting:
            for worker in ([warm] if warm is not None else []) + started:
                worker.cancel()
        for t in threads:
            while t.is_alive():  # a join the interrupt broke into may not wait: poll instead
                t.join(0.1)
        raise
    finally:
        for worker in ([warm] if warm is not None else []) + started:
            if worker_stats is not None:
                worker_stats.append({"worker_rss_kb": worker.rss_kb(),
                                     "peak_submission_rss_kb": worker.peak_child_rss_kb})
        for worker in started:
            worker.close()
    if failures:
        raise failures[0]
    return results


def _needs_worker(ctx: Context, student_dir: Path) -> bool:
    """False when the log can be reused or there is nothing to execute."""
    path = choose_notebook(student_dir, ctx.assignment.notebook).path
    if path is None:
        return False
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return _reusable_log(ctx, student_dir.name, _cache_key(ctx, sha)) is None


def _cache_key(ctx: Context, notebook_sha: str) -> str:
    """Same notebook, assignment, reference, data and grader code: same key."""
    return hashlib.sha256(f"{notebook_sha}:{ctx.fingerprint}".encode()).hexdigest()[:24]


def _reusable_log(ctx: Context, student: str, key: str) -> dict[str, Any] | None:
    """The student's existing log when it was made from exactly this (``key``), unless forced."""
    if ctx.force:
        return None
    previous = report.read_log(ctx.out_dir / student / report.LOG_NAME)
    return previous if previous is not None and previous.get("cache_key") == key else None


class _NoWorker:
    def run(self, **_: Any) -> Execution:
        raise RuntimeError("no worker was started for a submission that needs one")


def iter_logs(out_dir: Path) -> Iterator[dict[str, Any]]:
    for path in sorted(out_dir.glob(f"*/{report.LOG_NAME}")):
        data = report.read_log(path)
        if data is not None:
            yield data


def run_fingerprint(assignment: Assignment, reference_sha: str, data_fingerprint: str = "") -> str:
    return hashlib.sha256(json.dumps([assignment.fingerprint(), reference_sha, __version__,
                                      report.code_fingerprint(), data_fingerprint],
                                     sort_keys=True).encode()).hexdigest()
