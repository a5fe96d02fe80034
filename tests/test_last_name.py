"""The last-name classifier graded for real, training included, on held-out names."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from grader import datasets, spec
from grader.submission import student_dirs
from grader.gradebook import leaderboard
from grader.gradebook.apply import Gradebook
from grader.grading.run import GradingSession
from grader.logfile import SubmissionLog
from grader.publish import gradescope
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
    # A shorter cell limit than the assignment's keeps slow_training's wait short; the others'
    # training takes 10-15 s of CPU.
    a = dataclasses.replace(spec.find(ROOT, "rnn_last_name"), cell_seconds=30)
    dirs = student_dirs(submissions)
    book = Gradebook.load(a, root=ROOT, students={d.name for d in dirs})  # its leaderboard
    with GradingSession(root=ROOT, assignment=a, out_dir=base / "grades", data_dir=NAMES_DATA,
                        jobs=2, gradebook=book) as s:
        results = s.grade(dirs, jobs=2)
    return {r.log.student: r.log.as_dict() for r in results}


def checks(log: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in log["checks"]}


OPTIONAL = {"2B_parameter_names_lstm", "2B_logits_lstm"}


def test_reference_gets_full_marks_and_the_lstm_extra_credit(graded: dict[str, Any]) -> None:
    log = graded["reference"]
    assert (log["score"], log["max_score"]) == (23.0, 20.0)
    assert {c["name"] for c in log["checks"] if c["optional"]} == OPTIONAL
    assert log["questions"]["2.B"] == {"score": 10.0, "max_score": 7.0}
    message = checks(log)["2C_heldout_accuracy"]["message"]
    assert message == "held-out accuracy 79.0% on 1779 names: 10 of 10 points (0 at 70%, full at 78%)"


def test_without_the_optional_lstm_every_required_point_is_kept(graded: dict[str, Any]) -> None:
    log = graded["full_marks_lstm_not_implemented"]
    assert (log["score"], log["max_score"]) == (20.0, 20.0)
    assert {n for n, c in checks(log).items() if not c["passed"]} == OPTIONAL
    assert log["errors"] == []


def test_the_names_before_the_course_conventions_still_grade(graded: dict[str, Any]) -> None:
    log = graded["full_marks_previous_names"]
    assert (log["score"], log["max_score"]) == (23.0, 20.0)
    record = log["records"]["course_log"]
    assert set(record["history"]) == {"train_losses", "train_accs", "val_accs"}
    assert record["hparams"]["rnn_size"] == 64


def test_untouched_template_gets_zero(graded: dict[str, Any]) -> None:
    log = graded["untouched_stub"]
    assert log["score"] == 0.0
    assert checks(log)["2A_letter_to_index"]["message"] == (
        "not implemented: your code still raises NotImplementedError (letterToIndex)")


def test_untouched_course_stub_gets_zero_and_says_not_implemented(graded: dict[str, Any]) -> None:
    """The course's stubs raise nothing: they return or assign NotImplementedError()."""
    log = graded["untouched_course_stub"]
    assert log["score"] == 0.0
    messages = {n: c["message"] for n, c in checks(log).items() if c["visibility"] == "visible"}
    assert messages == {
        "2A_letter_to_index": (
            "not implemented yet (2.A): the code still looks like the stub (TypeError: "
            "letterToIndex('a') returned NotImplementedError())"),
        "2B_parameter_names_rnn": (
            "not implemented yet (2.B): the code still looks like the stub (TypeError: "
            "RecurrentClassifier sets self.embedding = NotImplementedError())"),
        "2B_logits_rnn": (
            "not implemented yet (2.B): the code still looks like the stub (TypeError: "
            "RecurrentClassifier sets self.embedding = NotImplementedError())"),
        "2B_padding_invariance": (
            "not implemented yet (2.B): the code still looks like the stub (TypeError: "
            "RecurrentClassifier sets self.embedding = NotImplementedError())"),
        "2C_heldout_accuracy": (
            "not implemented yet (2.C): the code still looks like the stub (TypeError: "
            "letterToIndex returned NotImplementedError())"),
    }


def test_reading_logits_at_the_padded_end_loses_those_checks(graded: dict[str, Any]) -> None:
    log = checks(graded["fails_2b_padded_end"])
    assert {n for n, c in log.items() if not c["passed"]} == {
        "2B_logits_rnn", "2B_logits_rnn_2_layers", "2B_logits_lstm", "2B_padding_invariance",
        "2C_heldout_accuracy"}
    assert log["2B_padding_invariance"]["message"].startswith("max_change: got ")
    # 2A (3) and the parameter names (2 required + 1 extra credit for the LSTM's).
    assert graded["fails_2b_padded_end"]["score"] == 6.0


def test_a_notebook_looking_for_held_out_labels_finds_none(graded: dict[str, Any]) -> None:
    prepared = datasets.prepare(spec.find(ROOT, "rnn_last_name"), NAMES_DATA)
    assert prepared is not None
    visible = len(prepared.visible)
    stdout = graded["reads_heldout_labels"]["cells"][0]["stdout"]
    assert f"data/names: 18 .txt files, {visible} names" in stdout
    assert "; 0 other candidate files" in stdout


def test_training_past_its_limit_keeps_unit_points_and_scores_no_accuracy(graded: dict[str, Any]) -> None:
    log = graded["slow_training"]
    assert log["score"] == 13.0  # 2.A, 2.B and the LSTM's extra credit
    message = checks(log)["2C_heldout_accuracy"]["message"]
    assert re.fullmatch(r"the notebook did not run to its end \(code cell \d+ \(`seed = 1998`\): cell exceeded "
                        r"its CPU time limit\), "
                        r"so this check was not scored", message)
    assert any(e["kind"] == "cell_timeout" for e in log["errors"])


def test_the_log_carries_what_the_course_notebook_recorded(graded: dict[str, Any]) -> None:
    record = graded["reference"]["records"]["course_log"]
    assert set(record) == {"history", "hparams", "parameters", "source"}
    assert set(record["history"]) == {"train_losses", "train_accuracies", "eval_accuracies"}
    assert len(record["history"]["eval_accuracies"]) == record["hparams"]["epochs"] == 20
    assert "def forward(self, x, last_pos)" in record["source"]["forward"]
    assert record["parameters"]["embedding.weight"] == [58, record["hparams"]["hidden_size"]]
    assert record["hparams"]["optimizer_class"] == "Adam"


def test_the_leaderboard_is_the_held_out_accuracies_of_the_logs(graded: dict[str, Any]) -> None:
    """Each log's leaderboard value is the accuracy its 2C message reports; the page ranks them."""
    measured = {}
    for student, log in graded.items():
        message = checks(log)["2C_heldout_accuracy"]["message"]
        found = re.match(r"held-out accuracy (\d+\.\d)% on 1779 names", message)
        if found is None:  # no accuracy measured: nothing on the board
            assert "leaderboard" not in log, student
            continue
        [entry] = log["leaderboard"]
        assert entry["name"] == "Held-out accuracy" and entry["order"] == "desc"
        assert f"{entry['value']:.1%}" == f"{found.group(1)}%"
        measured[student] = entry["value"]
        results = gradescope.results_json(SubmissionLog.from_dict(log))
        assert results["leaderboard"] == log["leaderboard"]
        assert gradescope.validate_results(results) == []
    assert {"reference", "full_marks_lstm_not_implemented"} <= set(measured)
    logs = [SubmissionLog.from_dict(log) for log in graded.values()]
    _, rows = leaderboard.ranking(logs)
    assert [student for _, student, _ in rows] == sorted(measured, key=lambda s: (-measured[s], s))
