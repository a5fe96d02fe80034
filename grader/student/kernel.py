"""The slow path: run a notebook in a fresh Jupyter kernel with nbclient, then ask the probes.

This is how most graders work (nbgrader, Otter): one kernel per notebook. We keep it as the
yardstick for the warm, sandboxed worker: ``bench/batch_speed.py`` grades every generated
submission both ways and checks the scores are identical. It is NOT sandboxed (the kernel runs
as the grader's user with the grader's file access), so ``grader run`` never uses it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from grader import wire
from grader.execution import CellOutcome, Execution, Limits, ProbeAnswer

_MIME = "application/x-grader-probes+json"

_PRELUDE = """\
import os as _os
import torch as _torch
_torch.set_num_threads(1)
"""

_ASK = """\
def _grader_ask():
    import json, types
    from IPython.display import display
    from grader import probelib, wire
    module = types.ModuleType("probes")
    exec(compile({source!r}, "<probes>", "exec"), module.__dict__)
    answers = {{}}
    for key, (probe, args) in json.loads({requests!r}).items():
        args = {{k: wire.decode_value(v) for k, v in args.items()}}
        try:
            answers[key] = {{"ok": True, "value": wire.encode_value(getattr(module, probe)(globals(), **args))}}
        except BaseException as exc:
            answers[key] = {{"ok": False, "error": probelib.describe_failure(exc)}}
    display({{"{mime}": json.dumps(answers)}}, raw=True)
_grader_ask()
"""


def run_in_kernel(*, workdir: Path, cells: list[str | None], probes_source: str,
                  requests: dict[str, tuple[str, dict[str, Any]]], limits: Limits) -> Execution:
    """Execute ``cells`` in a new ``python3`` kernel started in ``workdir``; same result type
    and the same rules as the sandboxed worker (a cell that kills its process is left out and
    the notebook run again), so the same grading applies."""
    started = time.perf_counter()
    dropped: dict[int, CellOutcome] = {}
    for attempt in range(1, 5):
        kept = [c if i not in dropped else None for i, c in enumerate(cells)]
        execution, died_in = _attempt(workdir, kept, probes_source, requests, limits)
        if died_in is None:
            break
        dropped[died_in] = CellOutcome(died_in, "killed", error={
            "ename": "Killed", "evalue": "the process died while running this cell", "traceback": ""})
    outcomes = sorted([*execution.cells, *dropped.values()], key=lambda c: c.index)
    return Execution(tuple(outcomes), execution.answers, execution.protections, (),
                     time.perf_counter() - started, attempt)


def _attempt(workdir: Path, cells: list[str | None], probes_source: str,
             requests: dict[str, tuple[str, dict[str, Any]]], limits: Limits
             ) -> tuple[Execution, int | None]:
    """One kernel, start to end; also says in which cell the kernel died, if it did."""
    started = time.perf_counter()
    nb = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    code = [(i, c) for i, c in enumerate(cells) if c is not None]
    nb.cells = [nbformat.v4.new_code_cell(_PRELUDE)] + [nbformat.v4.new_code_cell(c) for _, c in code]  # type: ignore[no-untyped-call]
    encoded = {k: [p, {a: wire.encode_value(v) for a, v in args.items()}] for k, (p, args) in requests.items()}
    nb.cells.append(nbformat.v4.new_code_cell(_ASK.format(  # type: ignore[no-untyped-call]
        source=probes_source, requests=json.dumps(encoded), mime=_MIME)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    client = NotebookClient(nb, timeout=int(limits.cell_seconds), kernel_name="python3",
                            allow_errors=True, resources={"metadata": {"path": str(workdir)}},
                            env=env)
    died_in: int | None = None
    current = 0
    with client.setup_kernel():
        for position, cell in enumerate(nb.cells):
            current = position
            try:
                client.execute_cell(cell, position)
            except CellTimeoutError:
                continue
            except DeadKernelError:
                died_in = code[position - 1][0] if 0 < position <= len(code) else None
                break
    outcomes = [_outcome(index, cell) for (index, _), cell in zip(code, nb.cells[1:-1])]
    if died_in is not None:
        outcomes = [o for o in outcomes if o.index != died_in]
    answers = _answers(nb.cells[-1]) if current == len(nb.cells) - 1 else {}
    return Execution(tuple(outcomes), answers, {"sandbox": "off: nbclient kernel (slow path)"},
                     (), time.perf_counter() - started, 1), died_in


def _outcome(index: int, cell: Any) -> CellOutcome:
    if cell.get("execution_count") is None and not cell.outputs:
        return CellOutcome(index, "not_run")
    stdout, figures, error = [], [], None
    for out in cell.outputs:
        if out.output_type == "stream":
            stdout.append(out.text)
        elif out.output_type == "error":
            error = {"ename": out.ename, "evalue": out.evalue, "traceback": ""}
        elif "image/png" in out.get("data", {}):
            figures.append(out.data["image/png"])
    status = "error" if error else "ok"
    return CellOutcome(index, status, 0.0, error, "".join(stdout), tuple(figures))


def _answers(cell: Any) -> dict[str, ProbeAnswer]:
    for out in cell.get("outputs", []):
        data = out.get("data", {})
        if _MIME in data:
            raw = data[_MIME]
            raw = json.loads(raw) if isinstance(raw, str) else raw
            return {k: ProbeAnswer(True, wire.decode_value(v["value"])) if v["ok"]
                    else ProbeAnswer(False, error={str(a): str(b) for a, b in v["error"].items()})
                    for k, v in raw.items()}
    return {}
