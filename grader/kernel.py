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
from grader.execute import CellOutcome, Execution, ProbeAnswer
from grader.sandbox import Limits

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
    as the sandboxed worker, so the same grading applies."""
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
    try:
        client.execute()
    except (CellTimeoutError, DeadKernelError):
        pass  # what ran is in the notebook's outputs; the rest is "not_run"
    outcomes = []
    for (index, _), cell in zip(code, nb.cells[1:-1]):
        outcomes.append(_outcome(index, cell))
    answers = _answers(nb.cells[-1])
    return Execution(tuple(outcomes), answers, {"sandbox": "off: nbclient kernel (slow path)"},
                     (), time.perf_counter() - started, 1)


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
