"""The leaderboard from what the grader measured: ranks, pseudonyms, no real names, and
Gradescope's documented `leaderboard` shape."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import jsonschema
import pytest

from grader import logfile, spec
from grader.errors import SpecError
from grader.gradebook import leaderboard
from grader.gradebook.apply import Gradebook
from grader.logfile import CheckResult, SubmissionLog
from grader.publish import gradescope
from tests.conftest import ROOT, grader_cli

ACCURACY = "2C_heldout_accuracy"


def measured_log(student: str, accuracy: float | None) -> SubmissionLog:
    check = CheckResult(ACCURACY, "2.C", "visible", 10.0, 10.0, True, "…",
                        measured=None if accuracy is None else {"accuracy": accuracy})
    return SubmissionLog(assignment="rnn_last_name", student=student,
                         notebook="rnn_last_name.ipynb", notebook_sha256=None, checks=(check,))


def test_entries_come_from_the_measured_check_in_gradescopes_shape() -> None:
    a = spec.find(ROOT, "rnn_last_name")
    entries = leaderboard.parse(a)
    assert entries == [leaderboard.Entry("Held-out accuracy", ACCURACY, "accuracy", "desc")]
    book = Gradebook(a, entries=entries)
    log = book.apply(measured_log("ann", 0.79), ROOT)
    assert log.leaderboard == ({"name": "Held-out accuracy", "value": 0.79, "order": "desc"},)
    results = gradescope.results_json(log)
    jsonschema.validate(results["leaderboard"], leaderboard.GRADESCOPE_LEADERBOARD)
    assert gradescope.validate_results(results) == []
    bad = {**results, "leaderboard": [{"name": "Held-out accuracy", "value": 0.79,
                                       "order": "up"}, {"value": 1}]}
    assert gradescope.validate_results(bad) == [
        "leaderboard[0].order: 'up' is not one of ['desc', 'asc']",
        "leaderboard[1]: 'name' is a required property"]
    assert book.apply(measured_log("ben", None), ROOT).leaderboard == ()  # nothing measured


def test_an_entry_must_name_a_measured_check() -> None:
    a = spec.find(ROOT, "rnn_last_name")
    wrong = dataclasses.replace(a, leaderboard=({"name": "x", "check": "2A_letter_to_index"},))
    with pytest.raises(SpecError, match=r"assignment.yaml: leaderboard\[0\].check: expected the "
                                        r"name of an accuracy check, got '2A_letter_to_index'"):
        leaderboard.parse(wrong)
    printed = dataclasses.replace(a, leaderboard=({"name": "x", "check": ACCURACY,
                                                   "metric": "self_reported"},))
    with pytest.raises(SpecError, match=r"leaderboard\[0\].metric: expected one of accuracy"):
        leaderboard.parse(printed)


def test_page_ranks_with_ties_and_shows_pseudonyms_never_names(tmp_path: Path) -> None:
    a = spec.find(ROOT, "rnn_last_name")
    book = Gradebook(a, entries=leaderboard.parse(a))
    grades = tmp_path / "grades"
    for student, acc in (("alice_smith", 0.75), ("bob_jones", 0.81), ("carol_wu", 0.75),
                         ("dan_ko", None)):
        logfile.write_in(grades, book.apply(measured_log(student, acc), ROOT))
    names = tmp_path / "pseudonyms.csv"
    names.write_text("student,pseudonym\nbob_jones,<i>GradientGoblin</i>\n")
    page = tmp_path / "board.html"
    r = grader_cli("report", str(grades), "--leaderboard", str(page), "--pseudonyms", str(names))
    assert r.returncode == 0, r.stderr
    html = page.read_text()
    rows = re.findall(r"<tr><td>(\d+)</td><td>([^<]*(?:<[^t][^<]*)*)</td><td>([^<]+)</td></tr>", html)
    assert rows == [("1", "&lt;i&gt;GradientGoblin&lt;/i&gt;", "81.00%"), ("2", "", "75.00%"),
                    ("2", "", "75.00%")]
    for student in ("alice", "smith", "bob_jones", "carol", "dan_ko"):
        assert student not in html
