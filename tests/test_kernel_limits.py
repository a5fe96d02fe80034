"""grader-check's kernel counts CPU seconds as the sandbox does, so a busy machine costs no check.

The same cells go through the Jupyter kernel (``student.kernel.KernelExecutor``) and, where the
sandbox runs, the warm worker: the same statuses and messages come back.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from grader.execution import Execution, Limits
from grader.student.kernel import KernelExecutor

pytestmark = pytest.mark.slow

SLEEP = "import time\ntime.sleep(2.5)\nprint('slept')"
# Busy for ``s`` CPU seconds of this process (the timer counts the process, not the wall).
BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}:\n    pass\nprint('burnt')"
FOREVER = "while True:\n    pass"


def _statuses(execution: Execution) -> list[tuple[str, str, str]]:
    return [(c.status, (c.error or {}).get("evalue", ""), c.stdout) for c in execution.cells]


def _kernel(tmp_path: Path, cells: list[str | None], limits: Limits) -> Execution:
    with KernelExecutor(limits=limits) as executor:
        return executor.run(workdir=tmp_path, cells=cells, probes_source="", requests={})


CASES = {
    # A sleep spends wall time, not CPU time: it is no timeout, though it outlasts the limit.
    "a_sleep_is_not_cpu": ([SLEEP, FOREVER, "print('after')"], Limits(cell_seconds=1, notebook_seconds=30),
                           [("ok", "", "slept\n"), ("timeout", "cell exceeded its CPU time limit", ""),
                            ("ok", "", "after\n")]),
    # The notebook's CPU seconds: the second cell gets what the first left, the third nothing.
    "the_notebook_budget": ([BURN.format(s=1.5), FOREVER, "print('after')"],
                            Limits(cell_seconds=2, notebook_seconds=3),
                            [("ok", "", "burnt\n"), ("timeout", "cell exceeded its CPU time limit", ""),
                             ("timeout", "the notebook's time limit was reached before this cell", "")]),
}


@pytest.mark.skipif(sys.platform == "win32", reason="no CPU timer there: wall-clock limits")
@pytest.mark.parametrize("case", sorted(CASES))
def test_the_kernel_counts_cpu_seconds(case: str, tmp_path: Path) -> None:
    cells, limits, expected = CASES[case]
    assert _statuses(_kernel(tmp_path, list(cells), limits)) == expected


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux's")
@pytest.mark.parametrize("case", sorted(CASES))
def test_the_worker_says_the_same(case: str, tmp_path: Path) -> None:
    from grader.sandbox.local import Worker

    cells, limits, expected = CASES[case]
    with Worker(limits=limits) as worker:
        execution = worker.run(workdir=tmp_path, cells=list(cells), probes_source="", requests={})
    assert _statuses(execution) == expected
