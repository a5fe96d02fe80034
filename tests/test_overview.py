"""`grader report`: a class overview computed from logs alone (constructed here, never graded)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from grader.reports import class_report as overview
from grader.errors import InputError
from tests.conftest import grader_cli

# question, check, max points: 30 in all.
CHECKS = [("1.A", "A1", 4.0), ("1.A", "A2", 6.0), ("1.B", "B1", 10.0), ("1.C", "C1", 5.0),
          ("1.C", "C2", 5.0)]


def make_log(student: str, failed: set[str], errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    checks = [{"name": n, "question": q, "score": 0.0 if n in failed else m, "max_score": m,
               "passed": n not in failed, "visibility": "visible", "message": "", "hint": ""}
              for q, n, m in CHECKS]
    questions: dict[str, dict[str, float]] = {}
    for c in checks:
        q = questions.setdefault(c["question"], {"score": 0.0, "max_score": 0.0})
        q["score"] += c["score"]
        q["max_score"] += c["max_score"]
    return {"schema_version": 1, "assignment": "demo", "student": student,
            "notebook": "demo.ipynb", "score": sum(c["score"] for c in checks), "max_score": 30.0,
            "questions": questions, "checks": checks, "errors": errors or [], "cells": []}


ALL = {n for _, n, _ in CHECKS}


@pytest.fixture()
def grades(tmp_path: Path) -> Path:
    out = tmp_path / "grades"
    logs = [
        make_log("alice", set()),
        make_log("bob", {"C1", "C2"}),
        make_log("carol", ALL, [{"kind": "cell_error", "cell": 3,
                                 "message": "cell 3 raised NameError: name 'x' is not defined"}]),
        make_log("dave", {"A2", "C1"}, [
            {"kind": "cell_timeout", "cell": 7, "message": "cell 7 timed out: cell exceeded its time limit"},
            {"kind": "cell_timeout", "cell": 8, "message": "cell 8 timed out: cell exceeded its time limit"}]),
        make_log("erin", ALL, [{"kind": "missing_notebook",
                                "message": "no demo.ipynb in s/erin/ (the folder has no notebook)"}]),
    ]
    for log in logs:
        (out / log["student"]).mkdir(parents=True)
        (out / log["student"] / "submission_log.json").write_text(json.dumps(log))
    (out / "frank").mkdir()
    (out / "frank" / "submission_log.json").write_text("{half a log")  # unreadable: left out
    (out / "summary.csv").write_text("not read\n")
    return out


def test_histogram_failed_checks_and_troubled(grades: Path) -> None:
    ov = overview.load(grades)
    assert [log.student for log in ov.logs] == ["alice", "bob", "carol", "dave", "erin"]
    assert ov.questions == ["1.A", "1.B", "1.C"]
    assert ov.max_score == 30.0
    assert ov.histogram() == [(0.0, 3.0, 2), (3.0, 6.0, 0), (6.0, 9.0, 0), (9.0, 12.0, 0),
                              (12.0, 15.0, 0), (15.0, 18.0, 0), (18.0, 21.0, 2), (21.0, 24.0, 0),
                              (24.0, 27.0, 0), (27.0, 30.0, 1)]
    assert ov.failed_checks() == [("1.C", "C1", 4), ("1.A", "A2", 3), ("1.C", "C2", 3),
                                  ("1.A", "A1", 2), ("1.B", "B1", 2)]
    assert ov.troubled() == [
        ("carol", ["cell_error"], "cell 3 raised NameError: name 'x' is not defined"),
        ("dave", ["cell_timeout"], "cell 7 timed out: cell exceeded its time limit"),
        ("erin", ["missing_notebook"], "no demo.ipynb in s/erin/ (the folder has no notebook)"),
    ]


def test_gradebook_csv(grades: Path) -> None:
    assert overview.gradebook_csv(overview.load(grades)) == (
        "student,score,max_score,1.A,1.B,1.C\n"
        "alice,30,30,10,10,10\n"
        "bob,20,30,10,10,0\n"
        "carol,0,30,0,0,0\n"
        "dave,19,30,4,10,5\n"
        "erin,0,30,0,0,0\n")


def test_markdown(grades: Path) -> None:
    assert overview.markdown(overview.load(grades)) == (
        "### demo: 5 submissions, 1 with full marks\n"
        "\n"
        "| student | score | 1.A | 1.B | 1.C | errors |\n"
        "|---|---|---|---|---|---|\n"
        "| alice | 30 / 30 | 10 | 10 | 10 |  |\n"
        "| bob | 20 / 30 | 10 | 10 | 0 |  |\n"
        "| carol | 0 / 30 | 0 | 0 | 0 | cell_error |\n"
        "| dave | 19 / 30 | 4 | 10 | 5 | cell_timeout |\n"
        "| erin | 0 / 30 | 0 | 0 | 0 | missing_notebook |\n"
        "\n"
        "| most failed check | question | failed |\n"
        "|---|---|---|\n"
        "| C1 | 1.C | 4 / 5 |\n"
        "| A2 | 1.A | 3 / 5 |\n"
        "| C2 | 1.C | 3 / 5 |\n"
        "| A1 | 1.A | 2 / 5 |\n"
        "| B1 | 1.B | 2 / 5 |\n")


def test_markdown_escapes_student_text(tmp_path: Path) -> None:
    out = tmp_path / "grades"
    (out / "x").mkdir(parents=True)
    log = make_log("a|b <img src=x>", set())
    (out / "x" / "submission_log.json").write_text(json.dumps(log))
    row = overview.markdown(overview.load(out)).splitlines()[4]
    assert row == r"| a\|b &lt;img src=x&gt; | 30 / 30 | 10 | 10 | 10 |  |"


def test_load_refuses_a_folder_without_logs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no submission logs"):
        overview.load(tmp_path)
    with pytest.raises(InputError, match="no such folder"):
        overview.load(tmp_path / "nope")


def test_report_command(grades: Path, tmp_path: Path) -> None:
    # A fixed width: rich wraps table cells to the terminal's.
    r = grader_cli("report", str(grades), "--csv", str(tmp_path / "book.csv"), env={"COLUMNS": "120"})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "5 submissions, max 30 points: mean 13.80, median 19, full marks 1"
    assert "│   [0, 3) │        2 │" in r.stdout
    assert "│ [27, 30] │        1 │" in r.stdout
    assert any(line.split("│")[1:4] == [" 1.C      ", " C1    ", "  4 / 5 "] for line in lines), r.stdout
    assert "│ dave    │ cell_timeout     │ cell 7 timed out: cell exceeded its time limit" in r.stdout
    assert (tmp_path / "book.csv").read_text().startswith("student,score,max_score,1.A,1.B,1.C\nalice,30,")
    md = grader_cli("report", str(grades), "--markdown")
    assert md.returncode == 0
    assert md.stdout == overview.markdown(overview.load(grades))


def test_report_command_errors(tmp_path: Path) -> None:
    r = grader_cli("report", str(tmp_path / "nope"))
    assert r.returncode == 3
    assert r.stderr.strip() == f"grader: error: {tmp_path / 'nope'}: no such folder"


def test_help_has_example() -> None:
    for command in ("report", "gradescope-results", "gradescope-bundle", "check"):
        r = grader_cli(command, "--help")
        assert r.returncode == 0, command
        assert "Example: grader " in r.stdout, command
