"""The two GitHub Actions workflows, run locally: their `run:` steps, in a checkout made here.

Install steps (named "Install ...") and `uses:` steps (checkout, setup-python, upload-artifact)
need GitHub and the network; they are skipped, and the paths the upload steps would attach are
checked to exist instead. Steps run the way Actions runs `shell: bash`.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import EXAMPLES, NAMES_DATA, ROOT, grader_cli

STUDENT_WORKFLOW = ROOT / "student_template" / ".github" / "workflows" / "check.yml"
INSTRUCTOR_WORKFLOW = ROOT / "workflows" / "instructor-grade.yml"
CORRECT = EXAMPLES / "full_marks_alt_layout" / "rnn_and_grad.ipynb"


@dataclass
class Run:
    returncode: int
    outputs: list[subprocess.CompletedProcess[str]]
    uploads: list[str]  # path patterns the upload-artifact steps would attach
    summary: str


def load(workflow: Path) -> dict[str, Any]:
    data = yaml.safe_load(workflow.read_text())
    assert isinstance(data, dict)
    return data


def run_workflow(workflow: Path, checkout: Path, tmp: Path, *, unset: tuple[str, ...] = ()) -> Run:
    """Run the job's steps in order; like Actions, stop at the first failing step."""
    wf = load(workflow)
    [job] = wf["jobs"].values()
    summary = tmp / "step_summary.md"
    summary.write_text("")
    env = {**os.environ, "GRADER_ROOT": "", "GITHUB_STEP_SUMMARY": str(summary),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    # Workflow-level values that are GitHub expressions need GitHub; the rest apply here too.
    env.update({k: str(v) for k, v in wf.get("env", {}).items() if "${{" not in str(v)})
    for name in unset:
        env.pop(name, None)
    outputs, uploads = [], []
    for step in job["steps"]:
        uses = str(step.get("uses", ""))
        if uses.startswith("actions/upload-artifact"):
            uploads += [p for p in str(step["with"]["path"]).splitlines() if p.strip()]
        if "run" not in step or str(step.get("name", "")).startswith("Install"):
            continue
        r = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                           cwd=checkout, env=env, capture_output=True, text=True, timeout=900)
        outputs.append(r)
        if r.returncode != 0:
            return Run(r.returncode, outputs, uploads, summary.read_text())
    return Run(0, outputs, uploads, summary.read_text())


def uploaded(run: Run, checkout: Path) -> dict[str, list[str]]:
    return {p: sorted(glob.glob(str(checkout / p.strip()))) for p in run.uploads}


def sections(summary: str) -> dict[str, list[str]]:
    """The job summary split at its `### <assignment>: ...` headings."""
    out: dict[str, list[str]] = {}
    for block in summary.split("### ")[1:]:
        lines = ("### " + block).rstrip("\n").splitlines()
        out[lines[0][4:].split(":")[0]] = lines
    return out


def test_workflows_have_the_expected_shape() -> None:
    for path in (STUDENT_WORKFLOW, INSTRUCTOR_WORKFLOW):
        wf = load(path)
        [job] = wf["jobs"].values()
        steps = job["steps"]
        assert True in wf or "on" in wf  # YAML 1.1 reads the key `on` as True
        uses = [s["uses"] for s in steps if "uses" in s]
        assert uses[0].startswith("actions/checkout@") and uses[-1].startswith("actions/upload-artifact@")
        [setup] = [s for s in steps if str(s.get("uses", "")).startswith("actions/setup-python@")]
        assert setup["with"]["python-version"] == "3.11"
        [install] = [s for s in steps if str(s.get("name", "")).startswith("Install")]
        assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in install["run"]
        assert 'pip install "$GRADER_SPEC"' in install["run"]
        assert "grader @ git+https://github.com/OWNER/grader" in wf["env"]["GRADER_SPEC"]
        assert steps[-1].get("if") == "always()"  # upload what there is, even after a failure


# -- the student's repository -----------------------------------------------------------------

def student_checkout(tmp: Path, notebook: Path | None) -> Path:
    repo = tmp / "my-homework"
    shutil.copytree(ROOT / "student_template", repo)
    if notebook is not None:
        shutil.copyfile(notebook, repo / "rnn_and_grad.ipynb")
    return repo


BUNDLES = sorted(p.name for p in (ROOT / "student_template" / "checks").iterdir())


@pytest.mark.slow
def test_student_push_with_a_correct_notebook(tmp_path: Path) -> None:
    repo = student_checkout(tmp_path, CORRECT)
    run = run_workflow(STUDENT_WORKFLOW, repo, tmp_path)
    assert run.returncode == 0, run.outputs[-1].stderr
    found = sections(run.summary)
    assert sorted(found) == BUNDLES  # every assignment of the template is checked
    assert found["rnn_and_grad"] == [
        "### rnn_and_grad: 15 / 15 points (visible checks only)", "",
        "| question | check | result | points |", "|---|---|---|---|",
        "| 1.A | 1A_parameter_count | PASS | 1 / 1 |", "| 1.A | 1A_forward_tanh | PASS | 3 / 3 |",
        "| 1.B | 1B_parameter_count | PASS | 1 / 1 |", "| 1.B | 1B_forward | PASS | 4 / 4 |",
        "| 1.C | 1C_loss_all | PASS | 3 / 3 |", "| 1.C | 1C_loss_last | PASS | 3 / 3 |"]
    files = uploaded(run, repo)
    assert files == {"grading/*/submission_log.json": [f"{repo}/grading/{b}/submission_log.json" for b in BUNDLES],
                     "grading/*/feedback.html": [f"{repo}/grading/{b}/feedback.html" for b in BUNDLES]}
    log = json.loads((repo / "grading" / "rnn_and_grad" / "submission_log.json").read_text())
    assert log["score"] == log["max_score"] == 15.0
    page = (repo / "grading" / "rnn_and_grad" / "feedback.html").read_text()
    assert "Your plots" in page and page.count("data:image/png;base64,") == 2


@pytest.mark.slow
def test_student_push_of_the_untouched_template_still_passes(tmp_path: Path) -> None:
    repo = student_checkout(tmp_path, None)
    run = run_workflow(STUDENT_WORKFLOW, repo, tmp_path)
    assert run.returncode == 0, run.outputs[-1].stderr
    found = sections(run.summary)
    assert sorted(found) == BUNDLES
    assert found["rnn_and_grad"][0] == "### rnn_and_grad: 0 / 15 points (visible checks only)"
    assert "| 1.A | 1A_parameter_count | FAIL | 0 / 1 |" in found["rnn_and_grad"]
    assert "- cell 5 raised NotImplementedError: 1.A init" in found["rnn_and_grad"]
    assert all(" 0 / " in lines[0] for lines in found.values())
    assert all(uploaded(run, repo).values())


@pytest.mark.slow
def test_student_push_of_a_broken_notebook_is_graded_not_failed(tmp_path: Path) -> None:
    """Not JSON is the student's mistake, reported like any other: score 0, and why."""
    repo = student_checkout(tmp_path, None)
    (repo / "rnn_and_grad.ipynb").write_text("{ not json")
    run = run_workflow(STUDENT_WORKFLOW, repo, tmp_path)
    assert run.returncode == 0, run.outputs[-1].stderr
    lines = sections(run.summary)["rnn_and_grad"]
    assert lines[0] == "### rnn_and_grad: 0 / 15 points (visible checks only)"
    assert any(line.startswith(f"- {repo}/rnn_and_grad.ipynb: not a valid notebook") for line in lines)


def test_student_push_without_checks_fails_the_job(tmp_path: Path) -> None:
    repo = student_checkout(tmp_path, CORRECT)
    shutil.rmtree(repo / "checks")
    run = run_workflow(STUDENT_WORKFLOW, repo, tmp_path)
    assert run.returncode == 1
    assert "::error::no checks/<assignment>/ folder in this repository" in run.outputs[-1].stdout


@pytest.mark.slow
def test_student_push_with_a_deleted_notebook_fails_the_job(tmp_path: Path) -> None:
    repo = student_checkout(tmp_path, None)
    (repo / "rnn_and_grad.ipynb").unlink()
    run = run_workflow(STUDENT_WORKFLOW, repo, tmp_path)
    assert run.returncode == 3  # the other notebooks are still checked
    assert "grader: error: rnn_and_grad.ipynb: no such notebook" in run.outputs[-1].stderr
    found = sections(run.summary)
    assert found["rnn_and_grad"] == [
        "### rnn_and_grad: not graded: the grader could not run (see the log of this step)"]
    assert sorted(found) == BUNDLES


@pytest.mark.slow
@pytest.mark.skipif("rnn_last_name" not in BUNDLES, reason="the template ships no data assignment")
def test_student_data_is_read_from_the_repository(tmp_path: Path) -> None:
    """The last-name checks use the student's own data/names/; with none, the job fails."""
    repo = student_checkout(tmp_path, CORRECT)
    without = run_workflow(STUDENT_WORKFLOW, repo, tmp_path, unset=("GRADER_NAMES_DATA",))
    assert without.returncode == 3
    assert "give the data folder with --data" in without.outputs[-1].stderr
    assert sections(without.summary)["rnn_last_name"][0].startswith("### rnn_last_name: not graded")
    shutil.copytree(NAMES_DATA, repo / "data" / "names")
    shutil.rmtree(repo / "grading")
    with_data = run_workflow(STUDENT_WORKFLOW, repo, tmp_path, unset=("GRADER_NAMES_DATA",))
    assert with_data.returncode == 0, with_data.outputs[-1].stderr
    assert sections(with_data.summary)["rnn_last_name"][0].startswith("### rnn_last_name: 0 / ")


# -- the instructor's repository --------------------------------------------------------------

@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "rnn_and_grad"
    r = grader_cli("bundle", "rnn_and_grad", "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


@pytest.mark.slow
def test_instructor_push_grades_the_class(tmp_path: Path, bundle: Path) -> None:
    repo = tmp_path / "course"
    for student in ("full_marks_alt_layout", "fails_1c_sum_not_mean", "raises_in_1b"):
        shutil.copytree(EXAMPLES / student, repo / "submissions" / student)
    shutil.copytree(bundle, repo / "checks" / "rnn_and_grad")
    run = run_workflow(INSTRUCTOR_WORKFLOW, repo, tmp_path)
    assert run.returncode == 0, run.outputs[-1].stderr
    lines = run.summary.splitlines()
    assert lines[0] == "### rnn_and_grad: 3 submissions, 1 with full marks"
    assert lines[2:7] == ["| student | score | 1.A | 1.B | 1.C | errors |",
                          "|---|---|---|---|---|---|",
                          "| fails_1c_sum_not_mean | 20 / 30 | 10 | 10 | 0 |  |",
                          "| full_marks_alt_layout | 30 / 30 | 10 | 10 | 10 |  |",
                          "| raises_in_1b | 21 / 30 | 10 | 1 | 10 | cell_error |"]
    assert uploaded(run, repo) == {"grades/": [f"{repo}/grades"]}
    for student in ("full_marks_alt_layout", "fails_1c_sum_not_mean", "raises_in_1b"):
        assert (repo / "grades" / student / "submission_log.json").is_file()
        assert (repo / "grades" / student / "feedback.html").is_file()
    assert (repo / "grades" / "summary.csv").is_file()


def test_instructor_push_without_the_bundle_fails_the_job(tmp_path: Path) -> None:
    repo = tmp_path / "course"
    shutil.copytree(EXAMPLES / "full_marks_alt_layout", repo / "submissions" / "full_marks_alt_layout")
    run = run_workflow(INSTRUCTOR_WORKFLOW, repo, tmp_path)
    assert run.returncode == 4
    assert "checks/rnn_and_grad" in run.outputs[-1].stderr
    assert run.summary == ""
