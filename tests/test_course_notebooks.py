"""Issue 11: notebooks written the course's way get the score their code deserves.

The scenarios (tests/scenarios/rnn_and_grad/, made by make_course_style.py) carry a Colab first
cell, `!pip`/`%pip` lines, `%matplotlib widget`, `.cuda()` and `.to("cuda")`, and the course's
given `store_h_for_grad` (retain_grad on every h_t, which raises under no_grad). Before this
change the correct one scored 0/30 (`No module named 'google'`) and 1.A lost 7 points.
"""

from __future__ import annotations

import multiprocessing
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from grader import spec
from grader.submission import student_dirs
from grader.grading.run import GradingSession
from tests.conftest import ROOT

SCENARIOS = ROOT / "tests" / "scenarios" / "rnn_and_grad"
COLAB_NOTES = [
    "google.colab.output.enable_custom_widget_manager() did nothing: the notebook runs on the "
    "grader, not on Colab",
    "google.colab.drive.mount() did nothing: the notebook runs on the grader, not on Colab",
    "not run (no shell while grading): !pip install -q ipympl",
    "not run (no shell while grading): %pip install --quiet tqdm",
    "the notebook asked for a GPU (.cuda()); this grader has none, so it ran on the CPU",
    'the notebook asked for a GPU (.to("cuda")); this grader has none, so it ran on the CPU',
]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("course_grades")
    a = spec.find(ROOT, "rnn_and_grad")
    with GradingSession(root=ROOT, assignment=a, out_dir=out, jobs=2) as session:
        results = session.grade(student_dirs(SCENARIOS), jobs=2)
    return {r.log.student: r.log.as_dict() for r in results}


def test_a_correct_colab_style_notebook_gets_full_marks_and_no_error(graded: dict[str, Any]) -> None:
    log = graded["full_marks_colab_gpu_style"]
    assert (log["score"], log["max_score"]) == (30.0, 30.0)
    assert log["errors"] == []
    assert log["notes"] == COLAB_NOTES + ["not run (no shell while grading): !ls"]


def test_an_untouched_course_stub_scores_zero_and_says_not_implemented(graded: dict[str, Any]) -> None:
    log = graded["zero_course_stub"]
    assert log["score"] == 0.0
    messages = {c["name"]: c["message"] for c in log["checks"]}
    # The course's __init__ stubs are `pass`: a layer with no parameters is found first.
    assert messages["1A_forward_tanh"] == (
        "not implemented yet (1.A): RNNLayer(2, 3) has no parameters: its __init__ creates no "
        "layer yet")
    assert messages["1B_forward"] == (
        "not implemented yet (1.B): RecurrentRegressionModel(net, 4) has no parameters: its "
        "__init__ creates no layer yet")
    assert messages["1C_loss_all"] == (
        "not implemented yet (1.C): the code still looks like the stub "
        "(TypeError: loss_fn must return a scalar tensor, got NotImplementedError)")
    # The Colab and shell lines are notes, not among the errors.
    assert all("google" not in e["message"] and "pip" not in e["message"] for e in log["errors"])


def test_a_missing_name_is_traced_to_the_cell_that_defines_it(tmp_path: Path) -> None:
    from grader.execution import CellOutcome, Execution, ProbeAnswer
    from grader.grading.score import _failure

    cells = ["!pip install ipympl", None, "import torch\nclass RNNLayer(torch.nn.Module):\n    pass",
             "import tqdm_missing"]
    execution = Execution(
        cells=(CellOutcome(0, "ok"), CellOutcome(2, "error", error={"ename": "SyntaxError", "evalue": "bad"}),
               CellOutcome(3, "error", error={"ename": "ModuleNotFoundError", "evalue": "no tqdm_missing"})),
        answers={}, protections={}, events=(), seconds=0.0, attempts=1)
    answer = ProbeAnswer(False, error={"kind": "not_defined", "ename": "NotDefined",
                                       "evalue": "RNNLayer is not defined"})
    assert _failure(answer, execution, cells) == (
        "RNNLayer is not defined (code cell 2 (`import torch`), which defines it, raised "
        "SyntaxError: bad)")
    other = ProbeAnswer(False, error={"kind": "not_defined", "ename": "NotDefined",
                                      "evalue": "loss_fn is not defined"})
    assert _failure(other, execution, cells) == (
        "loss_fn is not defined (code cell 3 (`import tqdm_missing`) raised ModuleNotFoundError: "
        "no tqdm_missing)")


def _hog(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_scores_do_not_depend_on_machine_load(tmp_path: Path) -> None:
    """The last-name reference (it trains) graded 3 times: alone twice, then with -j 2 beside
    two CPU-bound processes. Limits count CPU time, so the scores are identical."""
    subs = tmp_path / "submissions"
    for k in range(2):
        (subs / f"copy{k}").mkdir(parents=True)
        shutil.copy(ROOT / "reference" / "rnn_last_name.ipynb", subs / f"copy{k}")
    a = spec.find(ROOT, "rnn_last_name")
    scores = []
    with GradingSession(root=ROOT, assignment=a, out_dir=tmp_path / "grades", jobs=2,
                        force=True) as session:
        for _ in range(2):
            scores.append([(r["student"], r["score"], [c["score"] for c in r["checks"]])
                           for r in sorted((g.log.as_dict() for g in session.grade([subs / "copy0"], jobs=1)),
                                           key=lambda r: str(r["student"]))])
        hogs = [multiprocessing.Process(target=_hog, args=(600,)) for _ in range(2)]
        for h in hogs:
            h.start()
        try:
            loaded = sorted((g.log.as_dict() for g in session.grade(student_dirs(subs), jobs=2)),
                            key=lambda r: str(r["student"]))
        finally:
            for h in hogs:
                h.kill()
    assert scores[0] == scores[1]
    alone = scores[0][0]
    for r in loaded:
        assert (r["score"], [c["score"] for c in r["checks"]]) == (alone[1], alone[2])
