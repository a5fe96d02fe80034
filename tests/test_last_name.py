"""The last-name classifier graded for real, training included, on held-out names."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from grader import batch, data, spec
from grader.session import GradingSession
from tests.conftest import NAMES_DATA, ROOT

pytestmark = pytest.mark.slow
SCENARIOS = ROOT / "tests" / "scenarios" / "rnn_last_name"


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("last_name")
    submissions = base / "submissions"
    for scenario in SCENARIOS.iterdir():
        shutil.copytree(scenario, submissions / scenario.name)
    (submissions / "reference").mkdir()
    shutil.copy(ROOT / "reference" / "rnn_last_name.ipynb", submissions / "reference")
    # A shorter cell limit than the assignment's keeps slow_training's wait short.
    a = dataclasses.replace(spec.find(ROOT, "rnn_last_name"), cell_seconds=40)
    with GradingSession(root=ROOT, assignment=a, out_dir=base / "grades", data_dir=NAMES_DATA,
                        jobs=2) as s:
        results = s.grade(batch.student_dirs(submissions), jobs=2)
    return {r["student"]: r for r in results}


def checks(log: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in log["checks"]}


def test_reference_reaches_80_percent_and_full_marks(graded: dict[str, Any]) -> None:
    log = graded["reference"]
    assert (log["score"], log["max_score"]) == (20.0, 20.0)
    message = checks(log)["2C_heldout_accuracy"]["message"]
    accuracy = float(re.match(r"held-out accuracy ([\d.]+)% on 1779 names", message).group(1))  # type: ignore[union-attr]
    assert accuracy >= 80.0


def test_untouched_template_gets_zero(graded: dict[str, Any]) -> None:
    log = graded["untouched_stub"]
    assert log["score"] == 0.0
    assert checks(log)["2A_letter_to_index"]["message"] == (
        "not implemented: your code still raises NotImplementedError (letterToIndex)")


def test_reading_logits_at_the_padded_end_loses_those_checks(graded: dict[str, Any]) -> None:
    log = checks(graded["fails_2b_padded_end"])
    assert {n for n, c in log.items() if not c["passed"]} == {
        "2B_logits_rnn", "2B_logits_lstm", "2B_padding_invariance", "2C_heldout_accuracy"}
    assert log["2B_padding_invariance"]["message"].startswith("max_change: got ")
    assert graded["fails_2b_padded_end"]["score"] == 5.0


def test_a_notebook_looking_for_held_out_labels_finds_none(graded: dict[str, Any]) -> None:
    prepared = data.prepare(spec.find(ROOT, "rnn_last_name"), NAMES_DATA)
    assert prepared is not None
    visible = sum(len(v) for v in prepared.visible.values())
    stdout = graded["reads_heldout_labels"]["cells"][0]["stdout"]
    assert f"data/names: 18 .txt files, {visible} names" in stdout
    assert "; 0 other candidate files" in stdout


def test_training_past_its_limit_keeps_unit_points_and_scores_no_accuracy(graded: dict[str, Any]) -> None:
    log = graded["slow_training"]
    assert log["score"] == 10.0
    message = checks(log)["2C_heldout_accuracy"]["message"]
    assert re.fullmatch(r"the notebook did not run to its end \(cell \d+: cell exceeded its time limit\), "
                        r"so this check was not scored", message)
    assert any(e["kind"] == "cell_timeout" for e in log["errors"])


def test_the_log_carries_what_the_course_notebook_recorded(graded: dict[str, Any]) -> None:
    record = graded["reference"]["records"]["course_log"]
    assert set(record) == {"history", "hparams", "parameters", "source"}
    assert len(record["history"]["val_accs"]) == record["hparams"]["epochs"]
    assert "def forward(self, x, last_pos)" in record["source"]["forward"]
    assert record["parameters"]["embedding.weight"] == [58, record["hparams"]["rnn_size"]]
