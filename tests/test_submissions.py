"""Issue 10: which notebook is graded, links refused, stale logs, report output, interrupts.

Each test here failed before the change it covers: a folder whose only notebook was misnamed
scored 0 in `grader run`; a symlinked notebook was graded as the student's; logs of removed
students were still counted; `grader report --csv` made folders at random places and died
with a traceback; an interrupted run left copies of students' notebooks in $TMPDIR.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grader.submission import cell_label, choose_notebook
from tests.conftest import EXAMPLES, ROOT, grader_cli

CORRECT = EXAMPLES / "full_marks_alt_layout" / "rnn_and_grad.ipynb"
NB = "rnn_and_grad.ipynb"


def logs(out: Path) -> dict[str, dict]:  # type: ignore[type-arg]
    return {p.parent.name: json.loads(p.read_text()) for p in out.glob("*/submission_log.json")}


# -- the one rule for choosing the notebook -----------------------------------------------------

def test_the_expected_name_wins_over_other_notebooks(tmp_path: Path) -> None:
    shutil.copy(CORRECT, tmp_path / NB)
    shutil.copy(CORRECT, tmp_path / "scratch.ipynb")
    choice = choose_notebook(tmp_path, NB)
    assert (choice.path, choice.kind, choice.note) == (tmp_path / NB, "", "")


def test_a_lone_notebook_named_otherwise_is_graded_with_a_note(tmp_path: Path) -> None:
    (tmp_path / ".ipynb_checkpoints").mkdir()
    shutil.copy(CORRECT, tmp_path / ".ipynb_checkpoints" / "homework-checkpoint.ipynb")
    shutil.copy(CORRECT, tmp_path / "homework.ipynb")
    choice = choose_notebook(tmp_path, NB)
    assert choice.path == tmp_path / "homework.ipynb"
    assert choice.note == ("graded homework.ipynb as rnn_and_grad.ipynb: the submission has no "
                           "rnn_and_grad.ipynb, and homework.ipynb is its only notebook")


def test_the_expected_name_in_a_subfolder_is_found(tmp_path: Path) -> None:
    (tmp_path / "hw6").mkdir()
    shutil.copy(CORRECT, tmp_path / "hw6" / NB)
    shutil.copy(CORRECT, tmp_path / "old.ipynb")
    choice = choose_notebook(tmp_path, NB)
    assert (choice.path, choice.note) == (tmp_path / "hw6" / NB, "graded hw6/rnn_and_grad.ipynb, found in a subfolder")


def test_several_candidates_are_listed_and_none_is_graded(tmp_path: Path) -> None:
    shutil.copy(CORRECT, tmp_path / "a.ipynb")
    shutil.copy(CORRECT, tmp_path / "b.ipynb")
    choice = choose_notebook(tmp_path, NB)
    assert (choice.path, choice.kind) == (None, "several_notebooks")
    assert choice.message == ("no rnn_and_grad.ipynb in the submission, and several other "
                              "notebooks (a.ipynb, b.ipynb): upload your work as "
                              "rnn_and_grad.ipynb, alone")


def test_cells_are_named_as_a_student_finds_them() -> None:
    cells = ["import torch", None, "def loss_fn(pred, y, last_timestep_only=False):\n    pass",
             None, "\n\n# Self-test for 1.C. Every parameter is filled", ""]
    assert cell_label(cells, 2) == "code cell 2 (`def loss_fn(…`)"
    assert cell_label(cells, 4) == "code cell 3 (`# Self-test for 1.C. Every par…`)"
    assert cell_label(cells, 5) == "code cell 4"


def test_a_folder_of_misnamed_notebooks_needs_no_flag_when_their_metadata_names_it(
        submissions: Path, tmp_path: Path) -> None:
    from grader.cli import _choose_assignment

    (submissions / "erin").mkdir()
    shutil.copy(CORRECT, submissions / "erin" / "homework.ipynb")
    chosen = _choose_assignment(ROOT, [submissions / "erin"], None)
    assert chosen.name == "rnn_and_grad"


# -- stale logs and `grader report` -------------------------------------------------------------

def _fake_log(out: Path, student: str, score: float) -> None:
    log = {"schema_version": 1, "assignment": "rnn_and_grad", "student": student,
           "notebook": NB, "score": score, "max_score": 30.0, "questions": {}, "checks": [],
           "errors": [], "cells": []}
    (out / student).mkdir(parents=True)
    (out / student / "submission_log.json").write_text(json.dumps(log))


@pytest.mark.slow
def test_logs_of_removed_students_are_set_aside_not_counted(submissions: Path, tmp_path: Path) -> None:
    out = tmp_path / "grades"
    (submissions / "alice").mkdir()
    shutil.copy(CORRECT, submissions / "alice" / NB)
    _fake_log(out, "gone", 12.0)  # graded last week; the student has since left the course
    r = grader_cli("run", str(submissions), "--out", str(out), "-j", "1")
    assert r.returncode == 0, r.stderr
    assert (f"set aside 1 log(s) of students no longer in {submissions}/ (gone): "
            f"{out / '.stale'}/, not counted") in r.stdout
    assert (out / "summary.csv").read_text().splitlines()[1:] == ["alice,30.0,30.0,10.0,10.0,10.0,0,"]
    assert json.loads((out / ".stale" / "gone" / "submission_log.json").read_text())["score"] == 12.0
    rep = grader_cli("report", str(out))
    assert rep.returncode == 0, rep.stderr
    assert "1 submissions" in rep.stdout
    assert "not counted: 1 stale log(s) of students no longer among the submissions, in .stale/ (gone)" in rep.stdout


def test_report_csv_errors_are_one_line_and_create_nothing(tmp_path: Path) -> None:
    out = tmp_path / "grades"
    _fake_log(out, "alice", 30.0)
    r = grader_cli("report", str(out), "--csv", str(tmp_path / "nowhere" / "deeper" / "gb.csv"))
    assert r.returncode == 3
    assert r.stderr == (f"grader: error: --csv {tmp_path / 'nowhere' / 'deeper' / 'gb.csv'}: "
                        f"folder {tmp_path / 'nowhere' / 'deeper'} does not exist\n")
    assert not (tmp_path / "nowhere").exists()
    (tmp_path / "taken").mkdir()
    r = grader_cli("report", str(out), "--csv", str(tmp_path / "taken"))
    assert r.returncode == 3 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"grader: error: --csv {tmp_path / 'taken'}: cannot write it (")
    assert len(r.stderr.splitlines()) == 1


def test_report_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    out = tmp_path / "grades"
    for k in range(300):  # more than a pipe holds, so the writer meets the closed end
        _fake_log(out, f"student{k:03d}", float(k % 31))
    exe = Path(sys.executable).parent / "grader"
    p = subprocess.Popen([str(exe), "report", str(out)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    assert p.stdout is not None and p.stderr is not None
    p.stdout.read(10)
    p.stdout.close()  # like `| head -c 10`
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 0, err
    assert err == ""


# -- interrupts and $TMPDIR -----------------------------------------------------------------------

def _slow_class(submissions: Path, n: int) -> None:
    """``n`` students whose notebooks each take a few seconds (a hang in 1.C)."""
    for k in range(n):
        (submissions / f"s{k}").mkdir()
        shutil.copy(EXAMPLES / "hangs_in_1c" / NB, submissions / f"s{k}" / NB)
    (submissions / "a_fast").mkdir()
    shutil.copy(CORRECT, submissions / "a_fast" / NB)


@pytest.mark.slow
@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_run_cleans_up_and_a_rerun_resumes(submissions: Path, tmp_path: Path,
                                                          sig: signal.Signals, status: int,
                                                          private_tmpdir: Path) -> None:
    _slow_class(submissions, 3)
    out, tmp = tmp_path / "grades", private_tmpdir
    exe = Path(sys.executable).parent / "grader"
    env = {**os.environ, "TMPDIR": str(tmp)}
    p = subprocess.Popen([str(exe), "run", str(submissions), "--out", str(out), "-j", "2"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 240
    while not (out / "a_fast" / "submission_log.json").exists():
        assert time.monotonic() < deadline and p.poll() is None, p.communicate()
        time.sleep(0.2)
    p.send_signal(sig)
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == status, stderr
    written = len(logs(out))
    assert 1 <= written < 4
    assert (f"grader: interrupted: {written} of 4 submissions have an up-to-date log in "
            f"{out}/; run the same command again to grade the rest") in stderr
    assert sorted(os.listdir(tmp)) == []  # no staged notebook, worker folder or cache left
    assert (out / "summary.csv").read_text().count("\n") == 1 + written
    again = subprocess.run([str(exe), "run", str(submissions), "--out", str(out), "-j", "2"],
                           capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"graded 4 submissions: 1 full marks, 3 with errors, {written} reused" in again.stdout, (stderr, again.stdout)
    assert sorted(os.listdir(tmp)) == []


@pytest.mark.slow
def test_a_finished_run_leaves_nothing_in_tmpdir(submissions: Path, tmp_path: Path,
                                                 private_tmpdir: Path) -> None:
    (submissions / "alice").mkdir()
    shutil.copy(CORRECT, submissions / "alice" / NB)
    tmp = private_tmpdir
    r = grader_cli("run", str(submissions), "--out", str(tmp_path / "grades"), "-j", "1",
                   env={"TMPDIR": str(tmp)})
    assert r.returncode == 0, r.stderr
    c = grader_cli("check", str(submissions / "alice" / NB), env={"TMPDIR": str(tmp)})
    assert c.returncode == 0, c.stderr
    assert sorted(os.listdir(tmp)) == []


@pytest.mark.slow
def test_check_and_run_need_no_flag_for_either_assignment(tmp_path: Path) -> None:
    """The names data ships with the project: nothing to pass, nothing in the environment."""
    env = {"GRADER_NAMES_DATA": ""}
    for notebook, points in (("rnn_and_grad.ipynb", "rnn_and_grad: 0 / 15 points"), ("rnn_last_name.ipynb", "rnn_last_name: 0 / 6 points")):
        r = grader_cli("check", str(ROOT / "student_template" / notebook), env=env)
        assert r.returncode == 0, r.stderr
        assert points in r.stdout, r.stdout
    subs = tmp_path / "submissions"
    (subs / "ref").mkdir(parents=True)
    shutil.copy(ROOT / "reference" / "rnn_last_name.ipynb", subs / "ref")
    r = grader_cli("run", str(subs), env=env)
    assert r.returncode == 0, r.stderr
    log = json.loads((tmp_path / "grades" / "ref" / "submission_log.json").read_text())
    assert (log["score"], log["max_score"]) == (23.0, 20.0)  # the LSTM's 3 points are extra credit
