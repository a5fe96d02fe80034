"""Turn an execution and the expected values into check results and scores.

A wrong answer is data here, never an exception. Each failed check says why in words a student
can act on; a hidden check says only that it failed, and keeps the full explanation in
``CheckResult.detail`` for the instructor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from grader.compare import compare
from grader.execution import CellOutcome, Execution, ProbeAnswer
from grader.logfile import CheckResult
from grader.spec import Assignment, Check

HIDDEN_FAILED = "failed (hidden check: details are not shown)"
HIDDEN_PASSED = "passed"
NOT_YET = ("not implemented", "not implemented yet")


def ungraded_reason(assignment: Assignment, question: str, *, visible_only: bool = False) -> str:
    """Why ``question`` carries no points here ("" when it does): a student seeing "0 / 0"
    must know it is by design, not a check that went missing."""
    checks = [c for c in assignment.checks if c.question == question]
    if not checks:
        return f"{question} has no checks: it is not graded and carries no points"
    if visible_only and all(c.visibility == "hidden" or c.kind == "accuracy" for c in checks):
        return (f"{question} is graded by hidden checks only, run when your work is graded; "
                "there is nothing to check here")
    if all(c.optional for c in checks):
        return f"{question} is extra credit: its points are outside the maximum"
    return ""


@dataclass(frozen=True)
class HeldOut:
    """What an accuracy check is scored against (``grader.datasets`` makes it). It stays in the
    grader's process: the sandbox only ever receives the held-out inputs."""

    labels: np.ndarray  # int64 indices into ``classes``, one per held-out example
    classes: tuple[str, ...]
    item: str = "example"
    items: str = "examples"


def accuracy_points(accuracy: float, *, zero_at: float, full_at: float, points: float) -> float:
    """Linear from ``zero_at`` (0 points) to ``full_at`` (full points), clamped; 4 decimals."""
    if not math.isfinite(accuracy):
        return 0.0
    fraction = min(1.0, max(0.0, (accuracy - zero_at) / (full_at - zero_at)))
    return round(points * fraction, 4)


def grade(*, assignment: Assignment, execution: Execution | None,
          expected: dict[str, Any], truth: dict[str, Any] | None = None,
          unavailable: str = "", cells: Sequence[str | None] = ()) -> tuple[CheckResult, ...]:
    """Score every check. ``execution`` None (with ``unavailable`` saying why) scores all zero.

    ``cells`` (the notebook's, None for markdown) lets messages name cells as a student finds
    them."""
    results = []
    for check in assignment.checks:
        measured: dict[str, float] | None = None
        if execution is None:
            passed, score, message = False, 0.0, unavailable or "the notebook could not be run"
        else:
            measured_out: dict[str, float] = {}
            passed, score, message = _one(check, execution, expected, truth or {}, cells,
                                          measured_out)
            # What the grader itself measured (held-out accuracy): a leaderboard reads it.
            measured = measured_out or None
        detail = ""
        if check.visibility == "hidden":
            # The student reads only that it failed; the instructor's log keeps why.
            if not passed:
                detail = message + (f"\nHint: {check.hint}" if check.hint else "")
            message = HIDDEN_PASSED if passed else HIDDEN_FAILED
            hint = ""
        else:
            # Code not written yet: a hint about that code's details would be beside the point.
            hint = "" if passed or message.startswith(NOT_YET) else check.hint
        results.append(CheckResult(check.name, check.question, check.visibility, score,
                                   check.points, passed, message, hint, check.optional, detail,
                                   measured))
    return tuple(results)


def _label(cells: Sequence[str | None], index: int) -> str:
    from grader.submission import cell_label

    return cell_label(cells, index) if cells else f"cell {index + 1}"


def _one(check: Check, execution: Execution, expected: dict[str, Any],
         truth: dict[str, Any], cells: Sequence[str | None] = (),
         measured: dict[str, float] | None = None) -> tuple[bool, float, str]:
    if check.requires_complete and not execution.complete:
        stopped = next(c for c in execution.cells if c.status not in ("ok", "error"))
        why = stopped.error["evalue"] if stopped.error else stopped.status
        return False, 0.0, (f"the notebook did not run to its end ({_label(cells, stopped.index)}: "
                            f"{why}), so this check was not scored")
    answer = execution.answers.get(check.request_key)
    if answer is None:
        return False, 0.0, "the notebook stopped before this check could run"
    if not answer.ok:
        return False, 0.0, _failure(answer, execution, cells, check.question)
    if check.kind == "accuracy":
        return _accuracy(check, answer.value, truth.get(check.request_key), measured)
    return _compare(check, answer.value, expected[check.request_key])


def _compare(check: Check, got: Any, want: Any) -> tuple[bool, float, str]:
    if not isinstance(got, dict):
        return False, 0.0, "the probe returned no outputs"
    keys = check.outputs or tuple(want)
    problems = []
    for key in keys:
        if key not in got:
            problems.append(f"{key}: missing from what your code returned")
            continue
        result = compare(got[key], want[key], rtol=check.tolerance.rtol,
                         atol=check.tolerance.atol, name=key)
        if not result.passed:
            problems.append(result.message)
    if problems:
        return False, 0.0, "\n".join(problems)
    return True, check.points, "passed"


def _accuracy(check: Check, got: Any, truth: HeldOut | None,
              measured: dict[str, float] | None = None) -> tuple[bool, float, str]:
    if truth is None:
        return False, 0.0, "no held-out labels were available to score accuracy"
    predictions = got.get("predictions") if isinstance(got, dict) else None
    theirs = got.get("categories") if isinstance(got, dict) else None
    if (isinstance(predictions, np.ndarray) and isinstance(theirs, list)
            and predictions.dtype.kind in "iu"):
        # The notebook numbers its classes its own way; a class the data set lacks, or an index
        # past the notebook's list, is simply wrong.
        ours = list(truth.classes)
        lookup = np.array([ours.index(c) if c in ours else -1 for c in theirs] + [-1])
        predictions = lookup[np.clip(predictions.astype(np.int64), -1, len(theirs))]
    labels = np.asarray(truth.labels)
    if not isinstance(predictions, np.ndarray) or predictions.shape != labels.shape:
        shape = getattr(predictions, "shape", type(predictions).__name__)
        return False, 0.0, (f"predictions: expected one label per held-out {truth.item}, shape "
                            f"{labels.shape}, got {shape}")
    if predictions.dtype.kind not in "iub":
        return False, 0.0, f"predictions: expected integer class indices, got {predictions.dtype}"
    accuracy = float((predictions.astype(np.int64) == labels).mean()) if labels.size else 0.0
    if measured is not None:
        measured["accuracy"] = round(accuracy, 6)
    zero_at, full_at = check.accuracy
    score = accuracy_points(accuracy, zero_at=zero_at, full_at=full_at, points=check.points)
    message = (f"held-out accuracy {accuracy:.1%} on {labels.size} {truth.items}: {score:g} of "
               f"{check.points:g} points (0 at {zero_at:.0%}, full at {full_at:.0%})")
    return score >= check.points, score, message


def _failure(answer: ProbeAnswer, execution: Execution, cells: Sequence[str | None] = (),
             question: str = "") -> str:
    error = answer.error or {}
    kind, ename, evalue = error.get("kind", "error"), error.get("ename", ""), error.get("evalue", "")
    # The call the probe made into the student's code, arrays by shape (probelib.call).
    call = error.get("call", "")
    if kind == "not_implemented":
        where = f" ({evalue})" if evalue else ""
        return f"not implemented: your code still raises NotImplementedError{where}"
    if kind == "not_implemented_yet":
        return f"not implemented yet ({question}): {evalue}"
    if kind == "stub":
        where = " ".join(p for p in (question, error.get("function", "")) if p)
        return (f"not implemented yet ({where}): the code still looks like the stub "
                f"({ename}: {evalue})" + (f"\nin {call}" if call else ""))
    if kind == "not_defined":
        name = evalue.split(" ", 1)[0]
        empty = _empty_body(execution, cells, name)
        if empty:
            return f"not implemented yet ({question}): {empty}"
        return evalue + _first_cell_problem(execution, cells, name)
    if kind in ("killed", "timeout"):
        return f"did not finish: {evalue or 'time limit exceeded'}" + (f" in {call}" if call else "")
    tail = _traceback_tail(error.get("traceback", ""))
    head = f"{call} raised {ename}: {evalue}" if call else f"raised {ename}: {evalue}"
    return head + (f"\n{tail}" if tail else "")


def _defining_cell(cells: Sequence[str | None], name: str) -> int | None:
    """The first cell whose code defines ``name`` (a def, a class or an assignment)."""
    import re

    if not name.isidentifier():
        return None
    defines = re.compile(rf"^\s*(?:def|class)\s+{re.escape(name)}\b|^\s*{re.escape(name)}\s*(?::[^=]*)?=",
                         re.MULTILINE)
    for index, source in enumerate(cells):
        if source is not None and defines.search(source):
            return index
    return None


def _empty_body(execution: Execution, cells: Sequence[str | None], name: str) -> str:
    """When ``name`` is missing because its cell holds a block of comments only (a TODO left
    as the template wrote it), say so: Python's IndentationError (or, where the block ends the
    cell, "incomplete input") reads like a typo."""
    import re

    index = _defining_cell(cells, name)
    cell = next((c for c in execution.cells if c.index == index), None)
    error = cell.error if cell is not None else None
    if cell is None or error is None or error.get("ename") not in ("IndentationError", "SyntaxError"):
        return ""
    evalue = error.get("evalue", "")
    if not ("expected an indented block" in evalue or evalue.startswith("incomplete input")):
        return ""
    where = re.sub(r"\s*\(<ipython-input-\d+-[0-9a-f]+>, (line \d+)\)", r" at \1", evalue)
    return (f"{name} is not defined because a block in {_label(cells, cell.index)} holds only "
            f"comments ({where}); write your code below its TODO")


def _first_cell_problem(execution: Execution, cells: Sequence[str | None] = (),
                        name: str = "") -> str:
    """Why ``name`` is missing: a failed import first (the first cause of a cascade: the cells
    after it fail on names it should have brought), then the cell that should define it, else
    the first cell that failed. Where that cell failed on a name another cell should have
    defined, that cell comes first: the first cause of the cascade."""
    import re

    failed = [c for c in execution.cells if c.status not in ("ok", "not_run") and c.error]
    index = _defining_cell(cells, name) if cells else None
    by_index = {c.index: c for c in execution.cells}
    imports = [c for c in failed if (c.error or {}).get("ename") in ("ModuleNotFoundError", "ImportError")
               and (index is None or c.index < index)]
    parts = []
    for cell in imports[:1]:
        assert cell.error is not None
        parts.append(f"{_label(cells, cell.index)} raised {cell.error['ename']}: {cell.error['evalue']}")
    chain: list[tuple[CellOutcome, str]] = []  # the defining cell, then (root first) the cells that failed to define what it used
    missing, at = name, index
    while at is not None and len(chain) < 4:
        defining = by_index.get(at)
        if defining is None or defining.status == "ok":
            break
        chain.append((defining, missing))
        used = re.fullmatch(r"name '(\w+)' is not defined", (defining.error or {}).get("evalue", ""))
        if used is None:
            break
        missing = used.group(1)
        earlier = _defining_cell(cells[:at], missing)
        at = earlier if earlier is not None and earlier < at else None
    for k, (defining, defines) in enumerate(reversed(chain)):
        what = ("raised " + defining.error["ename"] if defining.status == "error" and defining.error
                else f"did not run ({defining.status})")
        detail = f": {defining.error['evalue']}" if defining.error else ""
        then = "then " if parts else ""
        which = "it" if k == len(chain) - 1 else defines
        parts.append(f"{_label(cells, defining.index)}, which defines {which}, {then}{what}{detail}")
    if not parts:
        for first in failed[:1]:
            assert first.error is not None
            what = ("raised " + first.error["ename"]) if first.status == "error" else "was stopped"
            parts.append(f"{_label(cells, first.index)} {what}: {first.error['evalue']}")
    return f" ({'; '.join(parts)})" if parts else ""


def _traceback_tail(text: str, lines: int = 12) -> str:
    kept = [line for line in text.rstrip().splitlines() if line.strip()]
    return "\n".join(kept[-lines:])
