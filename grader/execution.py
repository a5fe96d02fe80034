"""What running a notebook produces, and the seam it runs behind: portable result types.

Nothing here needs Linux, libc, torch or Dask, so every stage can import it: the grader's
scoring, the student's in-notebook checks, ``grader report`` and the Dask client alike::

    Limits       what one submission may spend (CPU seconds, MiB)
    CellOutcome  one code cell's status, output and figures
    ProbeAnswer  one probe request's value, or why there is none
    Execution    every cell and every answer of one run
    Executor     runs a staged submission into an Execution (local sandboxes, Dask, a kernel)

``execution_to_wire`` / ``execution_from_wire`` carry an Execution as JSON text (probe values
through ``grader.wire``), checking every field's type on the way back: nothing that crosses
a process or machine boundary is unpickled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from grader import wire

Requests = dict[str, tuple[str, dict[str, Any]]]  # request key -> (probe name, arguments)
Protections = dict[str, str]  # protection name -> "on" or "off: <why>"
# Set to "skip" wherever a grader runs a notebook (the sandbox's runner, grader-check's kernel):
# the template's own check, submit and setup cells then do nothing, since the grader checks the
# notebook itself. An environment variable, not "is grader.sandbox imported": a process that
# merely imported the sandbox (a test run, an instructor's script) still checks in-notebook.
GRADING_ENV = "GRADER_CHECK_CELLS"
# Limits that can cost points count CPU seconds; the wall-clock ones only catch what CPU time
# cannot (a sleep, a blocked read). Generous, so a busy machine never costs a point: a cell on
# a quarter of a core still ends on its CPU limit first.
WALL_FACTOR = 4.0
GRACE_SECONDS = 3.0


def protections_off(protections: Protections) -> list[str]:
    """The protections that are off, sorted."""
    return sorted(name for name, state in protections.items() if state.startswith("off"))


@dataclass(frozen=True)
class Limits:
    """Resource limits for one submission. Times in seconds, sizes in MiB."""

    cell_seconds: float = 60.0  # CPU seconds, as are the notebook's and a probe's
    notebook_seconds: float = 300.0
    probe_seconds: float = 10.0
    cpu_seconds: int = 600  # RLIMIT_CPU: the last resort, above every budget (GradingPlan)
    threads: int = 1  # torch/OpenMP threads in the sandbox
    memory_mb: int = 3072
    max_processes: int = 64
    file_mb: int = 64
    output_kb: int = 64


@dataclass(frozen=True)
class CellOutcome:
    index: int
    status: str  # ok | error | timeout | killed | skipped | not_run
    seconds: float = 0.0
    error: dict[str, str] | None = None
    stdout: str = ""
    figures: tuple[str, ...] = ()  # base64 PNG, checked before it is written anywhere


@dataclass(frozen=True)
class ProbeAnswer:
    ok: bool
    value: Any = None
    error: dict[str, str] | None = None


@dataclass(frozen=True)
class Execution:
    cells: tuple[CellOutcome, ...]
    answers: dict[str, ProbeAnswer]
    protections: Protections
    events: tuple[str, ...] = ()
    seconds: float = 0.0
    attempts: int = 1
    # What the notebook's runtime did in place of what it asked for (grader.sandbox.runtime):
    # said in the log, never an error.
    notes: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """Every cell ran to its end (errors count as run; timeouts and kills do not)."""
        return all(c.status in ("ok", "error") for c in self.cells)


class Executor(Protocol):
    """Runs one staged submission and returns what happened: the seam grading goes through.

    ``grader.sandbox.local.Worker`` (local sandboxes), ``grader.sandbox.cluster.ClusterExecutor``
    (Dask) and ``grader.student.kernel.KernelExecutor`` (a Jupyter kernel, unsandboxed)
    implement it.
    """

    cgroup_report: Protections
    peak_child_rss_kb: int

    def run(self, *, workdir: Path, cells: list[str | None], probes_source: str,
            requests: Requests) -> Execution: ...

    def rss_kb(self) -> int: ...

    def cancel(self) -> None:
        """Interrupted: end the sandboxes in flight; each ``run`` returns or raises soon after."""

    def close(self) -> None: ...


# -- Execution <-> JSON text ----------------------------------------------------------------------

def execution_to_wire(execution: Execution) -> str:
    """The Execution as JSON text; probe values through ``wire.encode_value``."""
    return json.dumps({
        "cells": [{"index": c.index, "status": c.status, "seconds": c.seconds, "error": c.error,
                   "stdout": c.stdout, "figures": list(c.figures)} for c in execution.cells],
        "answers": {k: {"ok": a.ok, "value": wire.encode_value(a.value), "error": a.error}
                    for k, a in execution.answers.items()},
        "protections": execution.protections, "events": list(execution.events),
        "seconds": execution.seconds, "attempts": execution.attempts,
        "notes": list(execution.notes),
    }, allow_nan=True, separators=(",", ":"))


def execution_from_wire(text: str) -> Execution:
    """Rebuild an Execution, checking every field's type; raises ``wire.WireError``."""
    try:
        data = json.loads(text)
        cells = tuple(
            CellOutcome(_typed(c["index"], int), _typed(c["status"], str),
                        float(_typed(c["seconds"], (int, float))), _error(c["error"]),
                        _typed(c["stdout"], str), tuple(_typed(f, str) for f in c["figures"]))
            for c in data["cells"])
        answers = {_typed(k, str): ProbeAnswer(_typed(a["ok"], bool), wire.decode_value(a["value"]),
                                               _error(a["error"]))
                   for k, a in _typed(data["answers"], dict).items()}
        return Execution(cells, answers,
                         {_typed(k, str): _typed(v, str) for k, v in data["protections"].items()},
                         tuple(_typed(e, str) for e in data["events"]),
                         float(_typed(data["seconds"], (int, float))), _typed(data["attempts"], int),
                         tuple(_typed(n, str) for n in data["notes"]))
    except (KeyError, TypeError, AttributeError, ValueError, RecursionError) as exc:
        raise wire.WireError(f"malformed execution ({exc})") from None


def _typed(value: Any, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"expected {kind}, got {type(value).__name__}")
    return value


def _error(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    return {_typed(k, str): _typed(v, str) for k, v in _typed(value, dict).items()}


def requests_to_wire(requests: Requests) -> str:
    return json.dumps({k: [probe, {a: wire.encode_value(v) for a, v in args.items()}]
                       for k, (probe, args) in requests.items()}, allow_nan=True)


def requests_from_wire(text: str) -> Requests:
    return {str(k): (str(probe), {str(a): wire.decode_value(v) for a, v in args.items()})
            for k, (probe, args) in json.loads(text).items()}
