"""A fresh Jupyter kernel as an ``Executor``: run a notebook's cells there, then the probes.

``grader-check`` (``grader.student.cli``) grades through it, and ``bench/batch_speed.py`` times
it as the yardstick of one kernel per notebook (how nbgrader and Otter work). It is NOT a
sandbox: the kernel runs as the user, with the user's files and network, so ``grader run``
never uses it. Otherwise it keeps the sandboxed worker's rules, so that ``make_log`` turns
the same code into the same log:

* frames of a cell's code are named ``<ipython-input-N-…>``, N the number Jupyter shows after
  Run All, so tracebacks and messages name cells as the worker's do;
* a cell has ``limits.cell_seconds`` and the notebook ``limits.notebook_seconds`` of CPU time,
  counted by a timer in the kernel (``limit_cpu``, ITIMER_PROF as in the worker), so a busy
  machine costs no check; the wall clock is only a backstop (``execution.WALL_FACTOR``). Where
  there is no CPU timer (Windows) the limits are wall-clock seconds;
* a cell that kills the kernel is left out and the notebook run again;
* the probes are asked in the kernel by ``grader.student.checks.ask``, the in-notebook check's
  own code, each with ``limits.probe_seconds`` (wall-clock); the answers come back as
  Execution JSON.

nbclient and nbformat are imported when a kernel starts, so this module imports anywhere.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from grader import wire
from grader.errors import SandboxError
from grader.execution import (GRACE_SECONDS, GRADING_ENV, WALL_FACTOR, CellOutcome, Execution,
                              Limits, ProbeAnswer, Protections, Requests, execution_from_wire,
                              execution_to_wire, requests_from_wire, requests_to_wire)
from grader.logfile import NO_SANDBOX
from grader.submission import code_cell_number

_MIME = "application/x-grader-execution+json"
MAX_ATTEMPTS = 4
# After an interrupt, how long a kernel may take to come back before it counts as stuck.
INTERRUPT_GRACE = 5.0
# How long a finished cell's outputs may lag behind its reply (see NotebookClient below).
IOPUB_GRACE = 60

_PRELUDE = """\
def _grader_prelude(numbers, threads, cpu):
    from IPython import get_ipython
    from IPython.core.compilerop import code_name
    compiler = get_ipython().compile
    compiler.get_code_name = lambda raw, code, count: code_name(code, numbers.get(count, count))
    try:
        import torch
        torch.set_num_threads(threads)
    except ImportError:
        pass
    if cpu:
        __import__('grader.student.kernel', fromlist=['limit_cpu']).limit_cpu(set(numbers), *cpu)
_grader_prelude({numbers!r}, {threads!r}, {cpu!r})
del _grader_prelude
"""
CPU_TIMER = hasattr(signal, "setitimer")


class CellTimeLimit(BaseException):
    """The cell used up its CPU seconds (a BaseException: ``except Exception`` keeps running)."""


class NotebookTimeLimit(BaseException):
    """The cell used up what was left of the notebook's CPU seconds."""


# Raised in the kernel; the executor reads them back by name from the cell's error output.
_CELL_LIMIT, _NOTEBOOK_LIMIT = CellTimeLimit.__name__, NotebookTimeLimit.__name__


def limit_cpu(counts: set[int], cell_budget: float, notebook_budget: float) -> None:
    """Run in the kernel by the prelude: each cell whose execution count is in ``counts`` (the
    notebook's own cells, not the checks) gets ``cell_budget`` CPU seconds, all of them
    together ``notebook_budget``, as the sandbox's runner counts them (ITIMER_PROF: the
    kernel's process, all its threads)."""
    from IPython import get_ipython

    shell = get_ipython()
    end = time.process_time() + notebook_budget
    notebook = [False]  # is the timer armed now the notebook's remainder, not the cell's?

    def on_alarm(_sig: int, _frame: Any) -> None:
        raise NotebookTimeLimit() if notebook[0] else CellTimeLimit()

    def arm(*_: Any) -> None:
        if shell.execution_count not in counts:
            return
        left = end - time.process_time()
        notebook[0] = left < cell_budget
        # Nothing left: stopped on its first tick, and reported as the notebook's limit.
        signal.setitimer(signal.ITIMER_PROF, max(min(cell_budget, left), 1e-6))

    def disarm(*_: Any) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0)

    signal.signal(signal.SIGPROF, on_alarm)
    shell.events.register("pre_run_cell", arm)
    shell.events.register("post_run_cell", disarm)

# Binds nothing in the kernel's globals: the probes see exactly what the notebook defined.
_ASK = ("__import__('grader.student.kernel', fromlist=['answer'])"
        ".answer({source!r}, {requests!r}, {seconds!r})\n")


def answer(probes_source: str, requests: str, probe_seconds: float) -> None:
    """Run in the kernel after the notebook's cells: the answers, displayed as data."""
    from IPython import get_ipython
    from IPython.display import display

    from grader.student.checks import ask

    answers = ask(probes_source, requests_from_wire(requests), ns=get_ipython().user_ns,
                  seconds=probe_seconds)
    display({_MIME: execution_to_wire(Execution((), answers, {}))},  # type: ignore[no-untyped-call]
            raw=True)


class KernelExecutor:
    """Runs a staged notebook in a new ``python3`` kernel started in the workdir."""

    def __init__(self, *, limits: Limits, protections: Protections | None = None,
                 kernel_name: str = "python3") -> None:
        self.limits = limits
        self.protections = dict(NO_SANDBOX if protections is None else protections)
        self.kernel_name = kernel_name
        self.cgroup_report: Protections = {}  # no cgroups: nothing is confined
        self.peak_child_rss_kb = 0
        self._cancelled = threading.Event()
        self._process: Any = None  # the running kernel's Popen, for cancel()

    def __enter__(self) -> KernelExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def rss_kb(self) -> int:
        return 0  # not measured: nothing here limits memory

    def cancel(self) -> None:
        self._cancelled.set()
        process = self._process
        if process is not None:
            try:
                process.kill()
            except OSError:
                pass

    def close(self) -> None:
        """Each run starts and ends its own kernel: nothing outlives it."""

    def run(self, *, workdir: Path, cells: list[str | None], probes_source: str,
            requests: Requests) -> Execution:
        """Execute the code ``cells`` (None marks a markdown cell) in ``workdir``, then ask each
        probe request; a cell that kills the kernel is left out and the notebook run again."""
        started = time.perf_counter()
        skip: dict[int, CellOutcome] = {}
        events: list[str] = []
        attempts = 0
        for attempts in range(1, MAX_ATTEMPTS + 1):
            outcomes, answers, died_in, reason, trouble = self._attempt(
                workdir, cells, set(skip), probes_source, requests)
            if self._cancelled.is_set():
                raise SandboxError("the run was interrupted")
            events += trouble
            if died_in is None:
                break
            skip[died_in] = CellOutcome(died_in, "killed", error={
                "ename": "Killed", "evalue": reason, "traceback": ""})
            # Worded as the worker words it, so both logs say the same.
            events.append(f"cell {died_in + 1}: {reason}; ran the notebook again without it")
        merged = {**outcomes, **skip}
        ordered = tuple(merged.get(i, CellOutcome(i, "not_run"))
                        for i, c in enumerate(cells) if c is not None)
        return Execution(ordered, answers, dict(self.protections), tuple(events),
                         time.perf_counter() - started, attempts)

    def _attempt(self, workdir: Path, cells: list[str | None], skip: set[int],
                 probes_source: str, requests: Requests
                 ) -> tuple[dict[int, CellOutcome], dict[str, ProbeAnswer], int | None, str,
                            list[str]]:
        """One kernel, start to end: the outcomes, the answers, the cell the kernel died in
        (and why), and what went wrong outside the cells."""
        import nbformat
        from nbclient import NotebookClient
        from nbclient.exceptions import CellTimeoutError, DeadKernelError

        run = [i for i, c in enumerate(cells) if c is not None and i not in skip]
        # The kernel counts each cell it executes (nbclient skips blank ones); the prelude is 1.
        executed = [i for i in run if (cells[i] or "").strip()]
        numbers = {count: code_cell_number(cells, i) for count, i in enumerate(executed, start=2)}
        nb = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
        new_cell = nbformat.v4.new_code_cell
        threads_n = max(1, self.limits.threads)
        # Budgets are per thread, as in the worker: N threads may spend N CPU seconds a second.
        cpu = ((self.limits.cell_seconds * threads_n, self.limits.notebook_seconds * threads_n)
               if CPU_TIMER else None)
        prelude = new_cell(  # type: ignore[no-untyped-call]
            _PRELUDE.format(numbers=numbers, threads=self.limits.threads, cpu=cpu))
        code = [new_cell(cells[i]) for i in run]  # type: ignore[no-untyped-call]
        ask = new_cell(_ASK.format(  # type: ignore[no-untyped-call]
            source=probes_source, requests=requests_to_wire(requests),
            seconds=self.limits.probe_seconds))
        nb.cells = [prelude, *code, ask]
        threads = str(self.limits.threads)
        # The kernel must be this interpreter's (it has the package): first on PATH, where the
        # "python3" kernel spec's bare `python` is looked up.
        env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
               "PYTHONHASHSEED": "0", GRADING_ENV: "skip",
               "PATH": os.pathsep.join([str(Path(sys.executable).parent),
                                        os.environ.get("PATH", "")])}
        # iopub_timeout: nbclient waits that long for a cell's outputs after its reply, then
        # goes on without them; on a busy machine its 4 s default lost the ask cell's answers.
        # The kernel logs errors only: its "running over TCP without encryption" warning on
        # every run is not the student's business.
        client = NotebookClient(nb, timeout=60, kernel_name=self.kernel_name, allow_errors=True,
                                iopub_timeout=IOPUB_GRACE,
                                resources={"metadata": {"path": str(workdir)}},
                                extra_arguments=["--IPKernelApp.log_level=ERROR"])
        outcomes: dict[int, CellOutcome] = {}
        answers: dict[str, ProbeAnswer] = {}
        trouble: list[str] = []
        # With the CPU timer, the wall clock is a backstop for what it cannot see (a sleep).
        factor, grace = (WALL_FACTOR, GRACE_SECONDS) if CPU_TIMER else (1.0, 0.0)
        notebook_end = time.monotonic() + factor * self.limits.notebook_seconds + grace
        spent = False  # the notebook's CPU seconds are used up: later cells do not run
        try:
            with client.setup_kernel(env=env):
                self._process = getattr(getattr(client.km, "provisioner", None), "process", None)
                client.timeout = 120  # the prelude imports torch
                client.execute_cell(prelude, 0)
                for position, (index, cell) in enumerate(zip(run, code), start=1):
                    if self._cancelled.is_set():
                        break
                    budget = min(factor * self.limits.cell_seconds + grace,
                                 notebook_end - time.monotonic())
                    if budget <= 0 or spent:
                        outcomes[index] = CellOutcome(index, "timeout", error={
                            "ename": "TimeoutError", "evalue": "the notebook's time limit was "
                            "reached before this cell", "traceback": ""})
                        continue
                    client.timeout = max(1, math.ceil(budget))
                    began = time.perf_counter()
                    try:
                        client.execute_cell(cell, position)
                    except CellTimeoutError:
                        if not self._interrupted(client, new_cell):
                            return (outcomes, {}, index,
                                    f"still running after the cell's {budget:g} s and it could "
                                    "not be interrupted; killed", trouble)
                        why = (f"still running {budget:.0f} s after the cell started (limit "
                               f"{self.limits.cell_seconds:g} s of CPU time)" if CPU_TIMER
                               else "cell exceeded its time limit")
                        outcomes[index] = CellOutcome(
                            index, "timeout", time.perf_counter() - began,
                            {"ename": "TimeoutError", "evalue": why, "traceback": ""},
                            _stdout(cell), _figures(cell))
                        continue
                    except DeadKernelError:
                        return (outcomes, {}, index, "the process died while running this cell",
                                trouble)
                    outcomes[index] = _outcome(index, cell, time.perf_counter() - began)
                    error = _error_output(cell)
                    spent = error is not None and str(error.ename) == _NOTEBOOK_LIMIT
                if self._cancelled.is_set():
                    return outcomes, {}, None, "", trouble
                client.timeout = math.ceil(self.limits.probe_seconds * max(1, len(requests))) + 60
                try:
                    client.execute_cell(ask, len(nb.cells) - 1)
                except (CellTimeoutError, DeadKernelError) as exc:
                    trouble.append(f"the checks did not finish ({type(exc).__name__}); stopped")
                    return outcomes, {}, None, "", trouble
                answers, problem = _answers(ask)
                if problem:
                    trouble.append(problem)
        except (RuntimeError, OSError) as exc:
            if self._cancelled.is_set():
                return outcomes, {}, None, "", trouble
            raise SandboxError(f"could not start a Jupyter kernel: {exc}") from None
        finally:
            self._process = None
        return outcomes, answers, None, "", trouble

    def _interrupted(self, client: Any, new_cell: Any) -> bool:
        """Interrupt the cell that overran, as the worker's CPU timer does; True when the kernel
        then answers again (the notebook goes on), False when it is stuck."""
        from nbclient.exceptions import CellTimeoutError, DeadKernelError
        from nbclient.util import run_sync

        try:
            run_sync(client.km.interrupt_kernel)()
            client.timeout = math.ceil(INTERRUPT_GRACE)
            # Not counted (store_history): the cells after it keep the numbers they were given.
            client.execute_cell(new_cell("pass"), 0, store_history=False)
        except (CellTimeoutError, DeadKernelError, RuntimeError, OSError):
            return False
        return True


def _stdout(cell: Any) -> str:
    return "".join(str(o.text) for o in cell.get("outputs", []) if o.output_type == "stream")


def _figures(cell: Any) -> tuple[str, ...]:
    return tuple(str(o.data["image/png"]).replace("\n", "") for o in cell.get("outputs", [])
                 if o.output_type in ("display_data", "execute_result")
                 and "image/png" in o.get("data", {}))[:8]


def _error_output(cell: Any) -> Any:
    """The cell's last error output, or None."""
    errors = [out for out in cell.get("outputs", []) if out.output_type == "error"]
    return errors[-1] if errors else None


def _outcome(index: int, cell: Any, seconds: float) -> CellOutcome:
    out = _error_output(cell)
    error = None if out is None else {"ename": str(out.ename), "evalue": str(out.evalue),
                                      "traceback": ""}
    if error is not None and error["ename"] in (_CELL_LIMIT, _NOTEBOOK_LIMIT):
        # Worded as the worker words its CPU timer's stop, so both logs say the same.
        return CellOutcome(index, "timeout", seconds, {
            "ename": "TimeoutError", "evalue": "cell exceeded its CPU time limit",
            "traceback": ""}, _stdout(cell), _figures(cell))
    return CellOutcome(index, "error" if error else "ok", seconds, error, _stdout(cell),
                       _figures(cell))


def _answers(cell: Any) -> tuple[dict[str, ProbeAnswer], str]:
    """The answers the ask cell displayed, or why there are none."""
    for out in cell.get("outputs", []):
        raw = out.get("data", {}).get(_MIME)
        if raw is not None:
            try:
                return execution_from_wire(raw if isinstance(raw, str) else str(raw)).answers, ""
            except wire.WireError as exc:
                return {}, f"the checks' answers could not be read ({exc})"
    for out in cell.get("outputs", []):
        if out.output_type == "error":
            return {}, f"the checks could not run ({out.ename}: {out.evalue})"
    return {}, "the checks did not answer"


def run_in_kernel(*, workdir: Path, cells: list[str | None], probes_source: str,
                  requests: Requests, limits: Limits) -> Execution:
    """One notebook through a ``KernelExecutor`` (``bench/batch_speed.py``'s slow path)."""
    executor = KernelExecutor(limits=limits,
                              protections={"sandbox": "off: nbclient kernel (slow path)"})
    return executor.run(workdir=workdir, cells=cells, probes_source=probes_source,
                        requests=requests)
