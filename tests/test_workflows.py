"""The two GitHub Actions workflows, run locally: their `run:` steps, in a checkout made here.

Install steps (named "Install ...") and `uses:` steps (checkout, setup-python, upload-artifact)
need GitHub and the network; they are skipped, and the paths the upload steps would attach are
checked to exist instead. Steps run the way Actions runs `shell: bash`. The student workflow runs
with a fresh venv that has only the template's wheel (tests/student_env.py) first on PATH, as
its install step would leave the runner; the instructor's with a `sudo` that just runs its
command (these tests already run as root).
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


def run_workflow(workflow: Path, checkout: Path, tmp: Path, *, unset: tuple[str, ...] = (),
                 bin_dir: Path | None = None) -> Run:
    """Run the job's steps in order; like Actions, stop at the first failing step.

    ``bin_dir`` comes first on PATH (default: this venv's, which has ``grader``)."""
    wf = load(workflow)
    [job] = wf["jobs"].values()
    summary = tmp / "step_summary.md"
    summary.write_text("")
    shims = tmp / "shims"
    shims.mkdir(exist_ok=True)
    sudo = shims / "sudo"  # `sudo -E cmd...` as root is just `cmd...`
    sudo.write_text('#!/usr/bin/env bash\nwhile [ "${1:-}" != "${1#-}" ]; do shift; done\nexec "$@"\n')
    sudo.chmod(0o755)
    first = bin_dir or Path(sys.executable).parent
    env = {**os.environ, "GRADER_ROOT": "", "GITHUB_STEP_SUMMARY": str(summary),
           "PATH": os.pathsep.join([str(first), str(shims), os.environ.get("PATH", "")])}
    for name in ("PYTHONPATH", "VIRTUAL_ENV"):
        env.pop(name, None)
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


def _major(uses: str) -> int:
    return int(uses.split("@v", 1)[1].split(".")[0])


def test_workflows_have_the_expected_shape() -> None:
    for path in (STUDENT_WORKFLOW, INSTRUCTOR_WORKFLOW):
        wf = load(path)
        [job] = wf["jobs"].values()
        steps = job["steps"]
        assert True in wf or "on" in wf  # YAML 1.1 reads the key `on` as True
        assert job["runs-on"] == "ubuntu-24.04"
        uses = [s["uses"] for s in steps if "uses" in s]
        # The first majors that run on Node 24 (Node 20 actions no longer run on the runners).
        assert [u.split("@")[0] for u in uses] == ["actions/checkout", "actions/setup-python",
                                                   "actions/upload-artifact"]
        assert _major(uses[0]) >= 5 and _major(uses[1]) >= 6 and _major(uses[2]) >= 6
        [setup] = [s for s in steps if str(s.get("uses", "")).startswith("actions/setup-python@")]
        assert setup["with"]["python-version"] == "3.12"
        assert setup["with"]["cache"] == "pip" and setup["with"]["cache-dependency-path"]
        [install] = [s for s in steps if str(s.get("name", "")).startswith("Install")]
        assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in install["run"]
        assert steps[-1].get("if") == "always()"  # upload what there is, even after a failure


def test_the_student_workflow_installs_only_what_the_template_carries() -> None:
    wf = load(STUDENT_WORKFLOW)
    text = STUDENT_WORKFLOW.read_text()
    assert "GRADER_SPEC" not in text and "git+" not in text and "env" not in wf
    [install] = [s for s in wf["jobs"]["check"]["steps"] if str(s.get("name", "")).startswith("Install")]
    assert 'wheels=(grader_checks-*.whl)' in install["run"]
    assert 'python -m pip install "${wheels[0]}[cli]" matplotlib ipywidgets' in install["run"]
    setup = wf["jobs"]["check"]["steps"][1]
    assert setup["with"]["cache-dependency-path"] == "grader_checks-*.whl"
    # The wheel it names is there, beside the notebooks.
    assert len(list((ROOT / "student_template").glob("grader_checks-*.whl"))) == 1


def test_the_instructor_workflow_stops_when_a_protection_is_off() -> None:
    steps = load(INSTRUCTOR_WORKFLOW)["jobs"]["grade"]["steps"]
    runs = [str(s.get("run", "")) for s in steps]
    check = next(i for i, r in enumerate(runs) if "grader sandbox" in r)
    grade = next(i for i, r in enumerate(runs) if "grader run" in r)
    assert check < grade
    assert runs[check] == 'sudo -E env "PATH=$PATH" grader sandbox'
    assert 'sudo -E env "PATH=$PATH" grader run submissions/' in runs[grade]


def test_workflows_validate_against_the_github_workflow_schema(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "check-jsonschema"
    r = subprocess.run([str(exe), "--builtin-schema", "vendor.github-workflows",
                        str(STUDENT_WORKFLOW), str(INSTRUCTOR_WORKFLOW)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ok -- validation done" in r.stdout
    broken = STUDENT_WORKFLOW.read_text().replace("runs-on: ubuntu-24.04", "runs_on: ubuntu-24.04")
    bad = tmp_path / "check.yml"
    bad.write_text(broken)
    r = subprocess.run([str(exe), "--builtin-schema", "vendor.github-workflows", str(bad)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1  # the validator does see a broken job


def test_grader_sandbox_reports_every_protection() -> None:
    r = grader_cli("sandbox", timeout=300)
    lines = r.stdout.splitlines()
    if r.returncode == 0 and lines[-1].startswith("all "):
        assert lines[-1].endswith(" protections on")
        assert all(line.startswith("on  ") for line in lines[:-1])
    elif r.returncode == 0:  # root whose uid cannot reach the venv, nested under Landlock
        assert lines[-1].endswith("unprivileged uid off but accepted: root nested in its own "
                                  "user, pid and mount namespaces under Landlock")
        assert [line for line in lines[:-1] if not line.startswith("on  ")] == [
            line for line in lines if line.startswith("ok  unprivileged uid: off: ")]
    else:  # an unprivileged machine: loud, exit 5, and the off ones named
        assert r.returncode == 5
        assert any(line.startswith("OFF ") for line in lines)
        assert "sandbox protection(s) off: " in r.stderr


def test_grader_sandbox_fails_when_a_protection_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from grader import cli
    from grader.sandbox import local as execute

    class FakeWorker:
        cgroup_report = {"cgroups": "off: no cgroup v2 delegation"}

        def __init__(self, **kwargs: Any) -> None:
            pass

        def __enter__(self) -> FakeWorker:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def run(self, **kwargs: Any) -> Any:
            return type("E", (), {"protections": {"landlock": "on (ABI 6)",
                                                  "user namespace": "off: EPERM"}})()

    monkeypatch.setattr(execute, "Worker", FakeWorker)
    r = CliRunner().invoke(cli.main, ["sandbox"])
    assert r.exit_code == 5
    assert r.output.splitlines()[:3] == ["OFF cgroups: off: no cgroup v2 delegation",
                                         "on  landlock: on (ABI 6)",
                                         "OFF user namespace: off: EPERM"]
    assert "2 sandbox protection(s) off: cgroups, user namespace" in r.output


def test_grader_sandbox_accepts_nested_root_as_grading_does(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from grader import cli
    from grader.sandbox import local as execute

    nested = {"landlock": "on (ABI 7)", "user namespace": "on", "pid namespace": "on",
              "mount namespace": "on", "unprivileged uid": "off: uid 990 cannot reach the venv"}

    class FakeWorker:
        cgroup_report = {"cgroups": "on (memory.max 2 GiB)"}

        def __init__(self, **kwargs: Any) -> None:
            pass

        def __enter__(self) -> FakeWorker:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def run(self, **kwargs: Any) -> Any:
            return type("E", (), {"protections": dict(nested)})()

    monkeypatch.setattr(execute, "Worker", FakeWorker)
    r = CliRunner().invoke(cli.main, ["sandbox"])
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[-3:] == [
        "ok  unprivileged uid: off: uid 990 cannot reach the venv",
        "on  user namespace: on",
        "5 protections on; unprivileged uid off but accepted: root nested in its own user, "
        "pid and mount namespaces under Landlock"]
    nested["mount namespace"] = "off: EPERM"  # without every namespace, root is refused
    r = CliRunner().invoke(cli.main, ["sandbox"])
    assert r.exit_code == 5
    assert "2 sandbox protection(s) off: mount namespace, unprivileged uid" in r.output


# -- the student's repository -----------------------------------------------------------------

def student_checkout(tmp: Path, notebook: Path | None) -> Path:
    repo = tmp / "my-homework"
    shutil.copytree(ROOT / "student_template", repo)
    if notebook is not None:
        shutil.copyfile(notebook, repo / "rnn_and_grad.ipynb")
    return repo


BUNDLES = sorted(p.name for p in (ROOT / "student_template" / "checks").iterdir())


def student_run(repo: Path, tmp: Path) -> Run:
    """The student workflow with what its install step leaves: the wheel's venv first on PATH."""
    from tests.student_env import student_python

    return run_workflow(STUDENT_WORKFLOW, repo, tmp, bin_dir=student_python().parent)


@pytest.mark.slow
def test_student_push_with_a_correct_notebook(tmp_path: Path) -> None:
    repo = student_checkout(tmp_path, CORRECT)
    run = student_run(repo, tmp_path)
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
    # The same log as grader run's (logfile.SubmissionLog): protections under "sandbox".
    assert log["sandbox"] == {"protections": {"sandbox": "off: your own kernel (no sandbox: the "
                                                         "code checked is your own)"},
                              "off": ["sandbox"]}
    page = (repo / "grading" / "rnn_and_grad" / "feedback.html").read_text()
    assert "Your plots" in page and page.count("data:image/png;base64,") == 2


@pytest.mark.slow
def test_student_push_of_the_untouched_template_still_passes(tmp_path: Path) -> None:
    repo = student_checkout(tmp_path, None)
    run = student_run(repo, tmp_path)
    assert run.returncode == 0, run.outputs[-1].stderr
    found = sections(run.summary)
    assert sorted(found) == BUNDLES
    lines = found["rnn_and_grad"]
    assert lines[0] == "### rnn_and_grad: 0 / 15 points (visible checks only)"
    assert "| 1.A | 1A_parameter_count | FAIL | 0 / 1 |" in lines
    assert any(line.startswith("- code cell ") and line.endswith("raised NotImplementedError: 1.A init")
               for line in lines), lines
    assert all(" 0 / " in lines[0] for lines in found.values())
    assert all(uploaded(run, repo).values())


@pytest.mark.slow
def test_student_push_of_a_broken_notebook_is_graded_not_failed(tmp_path: Path) -> None:
    """Not JSON is the student's mistake, reported like any other: score 0, and why."""
    repo = student_checkout(tmp_path, None)
    (repo / "rnn_and_grad.ipynb").write_text("{ not json")
    run = student_run(repo, tmp_path)
    assert run.returncode == 0, run.outputs[-1].stderr
    lines = sections(run.summary)["rnn_and_grad"]
    assert lines[0] == "### rnn_and_grad: 0 / 15 points (visible checks only)"
    assert any(line.startswith("- rnn_and_grad.ipynb: not a valid notebook") for line in lines), lines


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
    run = student_run(repo, tmp_path)
    assert run.returncode == 3  # the other notebooks are still checked
    assert "grader-check: error: rnn_and_grad.ipynb: no such notebook" in run.outputs[-1].stderr
    found = sections(run.summary)
    assert found["rnn_and_grad"] == [
        "### rnn_and_grad: not checked: the checks could not run (see the log of this step)"]
    assert sorted(found) == BUNDLES


@pytest.mark.slow
@pytest.mark.skipif("rnn_last_name" not in BUNDLES, reason="the template ships no data assignment")
def test_student_data_assignment_needs_no_data_option(tmp_path: Path) -> None:
    """The notebook runs in the checkout and reads the data where it always does; the visible
    checks of rnn_last_name call functions on fixed inputs (accuracy is the grader's alone)."""
    repo = student_checkout(tmp_path, CORRECT)
    run = student_run(repo, tmp_path)
    assert run.returncode == 0, run.outputs[-1].stderr
    lines = sections(run.summary)["rnn_last_name"]
    assert lines[0] == "### rnn_last_name: 0 / 6 points (visible checks only)"
    assert "2C_heldout_accuracy" not in run.summary


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
