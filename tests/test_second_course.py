"""The second course (courses/recurrent_cells/): a course of its own, graded from its folder.

Copied as a fresh clone would have it, its committed student template and wheel are what
``grader build`` makes there (its own package name and version, from its course.yaml), and its
example submissions score as their names say.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest

from grader.course import load
from tests.conftest import ROOT, grader_cli

pytestmark = pytest.mark.slow
COURSE = ROOT / "courses" / "recurrent_cells"
NAME = "gru_lstm_cells"
WHEEL = "recurrent_cells_checks-2027.1-py3-none-any.whl"
# student -> (score, the checks it fails); out of 14.
SCORES = {
    "full_marks": (14.0, set()),
    "full_marks_written_differently": (14.0, set()),
    "fails_gru_gate_swapped": (10.0, {"gru_values", "gru_gradients"}),
    "fails_lstm_no_forget_gate": (10.0, {"lstm_values", "lstm_gradients"}),
    # Accuracy from one step of a wave of random phase: 44.4%, near chance (0 at 40%).
    "fails_classifier_first_step_only": (10.3556, {"heldout_accuracy"}),
    "untouched_stub": (0.0, {"gru_values", "gru_shape", "gru_gradients", "lstm_values",
                             "lstm_shape", "lstm_gradients", "heldout_accuracy"}),
}


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("second") / "recurrent_cells"
    shutil.copytree(COURSE, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_its_template_and_wheel_are_its_own_and_up_to_date(clone: Path) -> None:
    course = load(clone)
    assert (course.package, course.version) == ("recurrent-cells-checks", "2027.1")
    r = grader_cli("build", "--check-only", cwd=clone)
    assert r.returncode == 0, r.stdout + r.stderr
    template = clone / "student_template"
    assert sorted(p.name for p in template.iterdir()) == ["checks", "data", f"{NAME}.ipynb", WHEEL]
    with zipfile.ZipFile(template / WHEEL) as wheel:
        names = wheel.namelist()
        metadata = wheel.read("recurrent_cells_checks-2027.1.dist-info/METADATA").decode()
    assert "Name: recurrent-cells-checks\nVersion: 2027.1\n" in metadata
    # The wheel is the library alone: the course's checks travel beside the notebook.
    assert [n for n in names if n.startswith("grader/checks/")] == []
    assert sorted(p.name for p in (template / "checks" / NAME).iterdir()) == [
        "assignment.yaml", "expected.json", "make_sequences.py", "probes.py"]
    shipped = (template / "checks" / NAME / "assignment.yaml").read_text()
    assert "gru_values" in shipped and "gru_gradients" not in shipped  # visible checks only
    r = grader_cli("check", str(template / f"{NAME}.ipynb"), cwd=clone)
    assert r.returncode == 0, r.stderr
    assert f"{NAME}: 0 / 6 points (visible checks only)" in r.stdout, r.stdout


def test_examples_score_as_named(clone: Path) -> None:
    r = grader_cli("run", "examples/submissions", "-j", "2", cwd=clone)
    assert r.returncode == 0, r.stderr
    logs: dict[str, dict[str, Any]] = {
        p.parent.name: json.loads(p.read_text())
        for p in (clone / "examples" / "grades").glob("*/submission_log.json")}
    got = {s: (log["score"], {c["name"] for c in log["checks"] if not c["passed"]})
           for s, log in logs.items()}
    assert got == SCORES
    assert all(log["max_score"] == 14.0 for log in logs.values())
    stub = {c["name"]: c for c in logs["untouched_stub"]["checks"]}
    assert stub["gru_values"]["message"] == (
        "not implemented: your code still raises NotImplementedError (gru_cell)")
    swapped = {c["name"]: c for c in logs["fails_gru_gate_swapped"]["checks"]}
    assert swapped["gru_values"]["message"].startswith("h: ")
    assert swapped["gru_gradients"]["message"] == "failed (hidden check: details are not shown)"
    assert swapped["gru_gradients"]["detail"].startswith(
        "dU_h: 25 of 25 elements differ beyond tolerance")  # undeclared outputs: sorted
