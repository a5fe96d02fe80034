"""Determinism, the skip cache, regrade reports, and grading from a checks bundle."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ROOT, grader_cli

pytestmark = pytest.mark.slow


def _scores(out: Path) -> dict[str, list[tuple[str, float, str]]]:
    logs = {p.parent.name: json.loads(p.read_text()) for p in out.glob("*/submission_log.json")}
    return {s: [(c["name"], c["score"], c["message"]) for c in log["checks"]] for s, log in logs.items()}


def test_same_submission_graded_twice_gets_the_same_scores(submissions: Path, tmp_path: Path) -> None:
    for name in ("full_marks_alt_layout", "fails_1a_no_recurrence", "untouched_stub"):
        shutil.copytree(EXAMPLES / name, submissions / name)
    first, second = tmp_path / "first", tmp_path / "second"
    assert grader_cli("run", str(submissions), "--out", str(first)).returncode == 0
    assert grader_cli("run", str(submissions), "--out", str(second), "--force").returncode == 0
    assert _scores(first) == _scores(second)
    assert len(_scores(first)) == 3


def test_regrade_reports_whose_score_changed(submissions: Path, tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES / "full_marks_alt_layout", submissions / "ada")
    shutil.copytree(EXAMPLES / "fails_1c_sum_not_mean", submissions / "bob")
    out = tmp_path / "grades"
    assert grader_cli("run", str(submissions), "--out", str(out)).returncode == 0
    # Ada breaks her loss and pushes again; Bob's notebook is untouched and is not regraded.
    shutil.copy(EXAMPLES / "fails_1c_sum_not_mean" / "rnn_and_grad.ipynb", submissions / "ada")
    r = grader_cli("run", str(submissions), "--out", str(out))
    assert r.returncode == 0
    assert "graded 2 submissions: 0 full marks, 0 with errors, 1 reused, " in r.stdout
    assert "scores changed since the last run:\n  ada: 30.0 -> 20.0\n" in r.stdout


def test_grading_from_a_checks_bundle_matches_grading_from_the_reference(
        submissions: Path, tmp_path: Path) -> None:
    for name in ("full_marks_alt_layout", "fails_1b_wrong_head"):
        shutil.copytree(EXAMPLES / name, submissions / name)
    bundle = tmp_path / "bundle"
    made = grader_cli("bundle", "rnn_and_grad", "--out", str(bundle))
    assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in bundle.iterdir()) == ["assignment.yaml", "expected.json", "probes.py"]
    assert "visibility: hidden" in (bundle / "assignment.yaml").read_text()
    # Graded somewhere with no project around it: only the bundle.
    a, b = tmp_path / "from_reference", tmp_path / "from_bundle"
    assert grader_cli("run", str(submissions), "--out", str(a)).returncode == 0
    r = grader_cli("run", str(submissions), "--out", str(b), "--checks", str(bundle), cwd=tmp_path,
                   env={"GRADER_ROOT": ""})
    assert r.returncode == 0, r.stderr
    assert _scores(a) == _scores(b)
