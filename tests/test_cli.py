"""The command line as a user meets it: exit codes and one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ROOT, grader_cli


def test_missing_folder_exits_3_with_one_line(tmp_path: Path) -> None:
    r = grader_cli("run", str(tmp_path / "nope"))
    assert r.returncode == 3
    assert r.stderr.strip() == f"grader: error: {tmp_path / 'nope'}: no such folder"


def test_empty_folder_exits_3(submissions: Path) -> None:
    r = grader_cli("run", str(submissions))
    assert r.returncode == 3
    assert "no student folders" in r.stderr


def test_unknown_assignment_exits_4(submissions: Path) -> None:
    (submissions / "alice").mkdir()
    r = grader_cli("run", str(submissions), "--assignment", "nope")
    assert r.returncode == 4
    assert r.stderr.strip().startswith("grader: error: unknown assignment 'nope' (known: ")


def test_invalid_yaml_exits_4_naming_the_file(tmp_path: Path, submissions: Path) -> None:
    root = tmp_path / "project"
    (root / "assignments" / "broken").mkdir(parents=True)
    (root / "assignments" / "broken" / "assignment.yaml").write_text("checks: [unclosed\n")
    (submissions / "alice").mkdir()
    r = grader_cli("run", str(submissions), "--assignment", "broken", "--root", str(root))
    assert r.returncode == 4
    assert r.stderr.startswith(f"grader: error: {root}/assignments/broken/assignment.yaml: invalid YAML")


def test_bad_option_value_names_the_parameter(submissions: Path) -> None:
    r = grader_cli("run", str(submissions), "-j", "0")
    assert r.returncode == 2
    assert "'--jobs' / '-j'" in r.stderr


@pytest.mark.slow
def test_run_grades_and_logs_bad_inputs(submissions: Path, tmp_path: Path) -> None:
    """Exit 0 when grading ran; invalid JSON and a missing notebook are log entries."""
    shutil.copytree(EXAMPLES / "full_marks_alt_layout", submissions / "good")
    (submissions / "broken_json").mkdir()
    (submissions / "broken_json" / "rnn_and_grad.ipynb").write_text("{not json")
    (submissions / "no_notebook").mkdir()
    (submissions / "no_notebook" / "homework.ipynb").write_text("{}")
    (submissions / "empty").mkdir()
    out = tmp_path / "grades"
    r = grader_cli("run", str(submissions), "--out", str(out), "-j", "1")
    assert r.returncode == 0, r.stderr
    logs = {p.parent.name: json.loads(p.read_text()) for p in out.glob("*/submission_log.json")}
    assert logs["good"]["score"] == 30.0
    bad = logs["broken_json"]
    assert bad["score"] == 0.0 and bad["errors"][0]["kind"] == "invalid_notebook"
    # Named relative to the student's folder: on Gradescope its path is a temporary one.
    assert bad["errors"][0]["message"].startswith("rnn_and_grad.ipynb: not a valid notebook")
    # A lone notebook named otherwise is the student's: graded (here: it is not valid JSON).
    renamed = logs["no_notebook"]
    assert renamed["notes"] == ["graded homework.ipynb as rnn_and_grad.ipynb: the submission has "
                                "no rnn_and_grad.ipynb, and homework.ipynb is its only notebook"]
    assert renamed["errors"][0]["kind"] == "invalid_notebook"
    assert renamed["errors"][0]["message"].startswith("homework.ipynb: not a valid notebook")
    assert logs["empty"]["errors"][0] == {
        "kind": "missing_notebook",
        "message": "no notebook in the submission: upload your rnn_and_grad.ipynb"}
    assert (out / "summary.csv").read_text().count("\n") == 5
    # Running again reuses every up-to-date log and changes nothing.
    again = grader_cli("run", str(submissions), "--out", str(out), "-j", "1")
    assert again.returncode == 0
    assert "graded 4 submissions: 1 full marks, 3 with errors, 1 reused, " in again.stdout


@pytest.mark.slow
def test_check_works_from_the_student_template_alone(tmp_path: Path) -> None:
    """A student's copy has no reference/ and no assignments/: only what build shipped."""
    student = tmp_path / "my_homework"
    shutil.copytree(ROOT / "student_template", student)
    r = grader_cli("check", str(student / "rnn_and_grad.ipynb"), cwd=tmp_path,
                   env={"GRADER_ROOT": ""})
    assert r.returncode == 0, r.stderr
    assert f"checks from {student}/checks/rnn_and_grad/" in r.stderr
    assert r.stdout.splitlines()[0] == "rnn_and_grad: 0 / 15 points (visible checks only)"
    assert "FAIL 1.A 1A_parameter_count (0/1)" in r.stdout
    assert "not implemented: your code still raises NotImplementedError (1.A init)" in r.stdout
    assert "1A_forward_other_shapes" not in r.stdout and "1C_loss_last_other_shape" not in r.stdout


def test_every_command_help_has_an_example() -> None:
    for command in ("run", "check", "build"):
        r = grader_cli(command, "--help")
        assert r.returncode == 0, command
        assert "Example: grader " in r.stdout, command


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    blocks = [b.split("```")[0].strip() for b in readme.split("```bash\n")[1:]]
    assert len(blocks) == 2
    assert blocks[1] in ci
