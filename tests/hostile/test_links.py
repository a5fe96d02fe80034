"""Hostile: a submission that is, or holds, a symbolic link is never graded as the student's.

A link can point at the reference or at a classmate's notebook (a git checkout of a student's
repository can hold a relative one): reading through it graded someone else's file. Here for
`grader run` and `grader check` (and for Gradescope in tests/test_gradescope.py), as root and,
through run_as_user.sh, as an unprivileged user.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from grader.submission import choose_notebook
from tests.conftest import EXAMPLES, ROOT, grader_cli

pytestmark = pytest.mark.hostile
CORRECT = EXAMPLES / "full_marks_alt_layout" / "rnn_and_grad.ipynb"
NB = "rnn_and_grad.ipynb"


def logs(out: Path) -> dict[str, dict]:  # type: ignore[type-arg]
    return {p.parent.name: json.loads(p.read_text()) for p in out.glob("*/submission_log.json")}


def test_links_are_refused_whatever_they_point_at(tmp_path: Path) -> None:
    alice, bob, carol = tmp_path / "alice", tmp_path / "bob", tmp_path / "carol"
    alice.mkdir()
    bob.mkdir()
    shutil.copy(CORRECT, alice / NB)
    (bob / NB).symlink_to(Path("..") / "alice" / NB)  # relative, as a git checkout can hold
    carol.symlink_to(alice)                            # a whole folder
    dave = tmp_path / "dave"
    dave.mkdir()
    (dave / NB).symlink_to(ROOT / "reference" / NB)    # absolute, to the reference
    assert choose_notebook(bob, NB).message == (
        "rnn_and_grad.ipynb is a symbolic link (to ../alice/rnn_and_grad.ipynb); links are not "
        "graded: upload the notebook file itself")
    assert choose_notebook(carol, NB).kind == "symlink"
    assert choose_notebook(carol, NB).message.startswith("the submission folder carol is a symbolic link")
    refused = choose_notebook(dave, NB)
    assert (refused.path, refused.kind) == (None, "symlink")
    # A linked notebook under another name is not a candidate either.
    erin = tmp_path / "erin"
    erin.mkdir()
    (erin / "homework.ipynb").symlink_to(alice / NB)
    assert choose_notebook(erin, NB).kind == "symlink"


@pytest.mark.slow
def test_run_applies_the_rule_and_refuses_links(submissions: Path, tmp_path: Path) -> None:
    (submissions / "alice").mkdir()
    shutil.copy(CORRECT, submissions / "alice" / NB)
    (submissions / "bob").mkdir()
    (submissions / "bob" / NB).symlink_to(Path("..") / "alice" / NB)
    (submissions / "carol").symlink_to(submissions / "alice")
    (submissions / "dave").mkdir()
    (submissions / "dave" / NB).symlink_to(ROOT / "reference" / NB)
    (submissions / "erin").mkdir()
    shutil.copy(CORRECT, submissions / "erin" / "homework (2).ipynb")
    (submissions / "frank").mkdir()
    shutil.copy(CORRECT, submissions / "frank" / "a.ipynb")
    shutil.copy(CORRECT, submissions / "frank" / "b.ipynb")
    out = tmp_path / "grades"
    r = grader_cli("run", str(submissions), "--out", str(out), "-j", "2")
    assert r.returncode == 0, r.stderr
    got = logs(out)
    assert {s: log["score"] for s, log in got.items()} == {
        "alice": 30.0, "bob": 0.0, "carol": 0.0, "dave": 0.0, "erin": 30.0, "frank": 0.0}
    for student in ("bob", "carol", "dave"):
        assert got[student]["errors"][0]["kind"] == "symlink", student
    assert got["erin"]["notes"] == [
        "graded homework (2).ipynb as rnn_and_grad.ipynb: the submission has no "
        "rnn_and_grad.ipynb, and homework (2).ipynb is its only notebook"]
    assert got["frank"]["errors"][0]["kind"] == "several_notebooks"
    assert "a.ipynb, b.ipynb" in got["frank"]["checks"][0]["message"]


def test_check_refuses_a_linked_notebook(tmp_path: Path) -> None:
    link = tmp_path / NB
    link.symlink_to(ROOT / "reference" / NB)
    r = grader_cli("check", str(link))
    assert r.returncode == 3
    assert r.stderr.strip() == (f"grader: error: {link}: is a symbolic link; only a notebook "
                                "file itself is graded")
