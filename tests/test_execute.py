"""The executor on its own: limits and re-runs, with small inline notebooks."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from grader.sandbox.local import Worker
from grader.execution import Limits

PROBES = "def get(ns, *, name):\n    return {'value': ns[name]}\n"


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    with Worker(limits=Limits(cell_seconds=2, notebook_seconds=4, probe_seconds=2)) as w:
        yield w


def test_markdown_cells_keep_their_notebook_positions(worker: Worker, tmp_path: Path) -> None:
    ex = worker.run(workdir=tmp_path, cells=[None, "a = 1", None, "b = a + 1"], probes_source=PROBES,
                    requests={"b": ("get", {"name": "b"})})
    assert [(c.index, c.status) for c in ex.cells] == [(1, "ok"), (3, "ok")]
    assert ex.answers["b"].value == {"value": 2}


def test_notebook_limit_stops_later_cells_but_keeps_probes(worker: Worker, tmp_path: Path) -> None:
    # Limits count CPU time: each cell burns 1.5 s of it (a sleep would not count).
    burn = "t0 = time.process_time()\nwhile time.process_time() - t0 < 1.5:\n    pass"
    cells = ["import time\nx = 1", burn, burn, burn, "y = 2"]
    ex = worker.run(workdir=tmp_path, cells=cells, probes_source=PROBES,
                    requests={"x": ("get", {"name": "x"}), "y": ("get", {"name": "y"})})
    statuses = [c.status for c in ex.cells]
    assert statuses[:3] == ["ok", "ok", "ok"] and statuses[3] == "timeout" and statuses[4] == "timeout"
    assert ex.cells[4].error == {"ename": "TimeoutError", "traceback": "",
                                 "evalue": "the notebook's time limit was reached before this cell"}
    assert not ex.complete
    assert ex.answers["x"].value == {"value": 1}
    assert ex.answers["y"].ok is False  # never defined


def test_a_hung_probe_is_killed_and_the_others_still_answer(worker: Worker, tmp_path: Path) -> None:
    # Ignoring the CPU timer's signal defeats the soft limit; the wall-clock backstop is next.
    probes = PROBES + ("def hang(ns):\n    import signal\n    signal.signal(signal.SIGPROF, signal.SIG_IGN)\n"
                       "    while True:\n        pass\n")
    ex = worker.run(workdir=tmp_path, cells=["z = 3"], probes_source=probes,
                    requests={"a": ("hang", {}), "b": ("get", {"name": "z"})})
    assert ex.answers["a"].ok is False and ex.answers["a"].error is not None
    assert ex.answers["a"].error["kind"] == "killed"
    assert ex.answers["b"].value == {"value": 3}
    assert ex.attempts == 2
    assert ex.events == ("check input a: the check did not finish within 11 s; killed; ran the notebook again without it",)


def test_stub_messages_come_from_the_probes_module(worker: Worker, tmp_path: Path) -> None:
    fail = "def fail(ns):\n    raise RuntimeError('deep down: the stub left it empty')\n"
    requests = {"f": ("fail", {})}
    plain = worker.run(workdir=tmp_path, cells=["x = 1"], probes_source=PROBES + fail,
                       requests=requests)
    declared = worker.run(workdir=tmp_path, cells=["x = 1"], requests=requests,
                          probes_source="STUB_MESSAGES = ('the stub left it empty',)\n" + PROBES + fail)
    assert plain.answers["f"].error is not None and declared.answers["f"].error is not None
    assert (plain.answers["f"].error["kind"], declared.answers["f"].error["kind"]) == ("error", "stub")


def test_the_assignments_preload_and_warmup_run_once_before_serving(tmp_path: Path) -> None:
    # Modules nothing else in the worker imports; a preload that does not import is skipped.
    script = tmp_path / "warmup.py"
    script.write_text("import wave\nimport matplotlib.pyplot as plt\nplt.plot([1, 2])\n")
    work = tmp_path / "work"
    work.mkdir()
    probes = PROBES + "def loaded(ns):\n    import sys\n    return {m: m in sys.modules for m in ('wave', 'mailbox')}\n"
    with Worker(limits=Limits(), preload=("mailbox", "no_such_module_at_all"), warmup=[script]) as w:
        ex = w.run(workdir=work, cells=["x = 1"], probes_source=probes, requests={"m": ("loaded", {})})
    assert ex.answers["m"].value == {"wave": True, "mailbox": True}
    assert ex.cells[0].figures == ()  # the warm-up's figure is nobody's output


def test_a_failing_warmup_stops_the_worker_and_names_the_file(tmp_path: Path) -> None:
    from grader.errors import SandboxError

    script = tmp_path / "warmup.py"
    script.write_text("x = 1\nraise ValueError('no cache here')\n")
    with pytest.raises(SandboxError) as info:
        Worker(limits=Limits(), warmup=[script])
    assert str(info.value) == ("the grading worker failed to start: warm-up script "
                               f"{script.resolve()}, line 2 raised ValueError: no cache here")
    with pytest.raises(SandboxError, match="warm-up script .*/gone.py: no such file"):
        Worker(limits=Limits(), warmup=[tmp_path / "gone.py"])
