"""Gradescope: results.json from a log, its validator, and the autograder zip run end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from grader.logfile import SubmissionLog
from grader.publish import gradescope
from tests.conftest import EXAMPLES, NAMES_DATA, ROOT, grader_cli

LOG: dict[str, Any] = {
    "schema_version": 1, "assignment": "rnn_and_grad", "student": "alice",
    "notebook": "rnn_and_grad.ipynb", "score": 4.0, "max_score": 9.0,
    "checks": [
        {"name": "1A_forward", "question": "1.A", "score": 3.0, "max_score": 3.0, "passed": True,
         "visibility": "visible", "message": "passed", "hint": "h_0 is zeros"},
        {"name": "1A_other", "question": "1.A", "score": 0.0, "max_score": 2.0, "passed": False,
         "visibility": "hidden", "message": "failed (hidden check: details are not shown)", "hint": ""},
        {"name": "1C_loss", "question": "1.C", "score": 1.0, "max_score": 4.0, "passed": False,
         "visibility": "visible", "message": "loss: got 2, expected 1", "hint": "take the mean"},
    ],
    "errors": [{"kind": "cell_error", "cell": 5, "message": "cell 5 raised ValueError: bad"}],
    "timings": {"total_seconds": 2.2},
}


def results_json(log: dict[str, Any]) -> dict[str, Any]:
    """results.json of a log given as its JSON (the reader makes it a typed log first)."""
    return gradescope.results_json(SubmissionLog.from_dict(log))


def test_results_json_maps_every_check() -> None:
    r = results_json(LOG)
    assert gradescope.validate_results(r) == []
    assert r["score"] == 4.0 and r["execution_time"] == 3
    assert r["visibility"] == "visible" and r["stdout_visibility"] == "hidden"
    # Hidden points are in the score (the grade) but in nothing a student sees before publication.
    assert r["output"] == ("rnn_and_grad: 4 / 7 points on the visible checks. The hidden check "
                           "is shown, with its points, when grades are published.\nYour notebook "
                           "did not run cleanly (1 error(s)); see 'notebook runs without errors' below.")
    assert r["tests"] == [
        {"name": "notebook runs without errors", "number": "0.1", "score": 0.0, "max_score": 0.0,
         "status": "failed", "output": "cell 5 raised ValueError: bad", "tags": ["notebook"],
         "visibility": "visible"},
        {"name": "1A_forward", "number": "1.A.1", "score": 3.0, "max_score": 3.0, "status": "passed",
         "output": "passed", "tags": ["1.A"], "visibility": "visible"},
        {"name": "1A_other", "number": "1.A.2", "score": 0.0, "max_score": 2.0, "status": "failed",
         "output": "hidden check", "tags": ["1.A"], "visibility": "after_published"},
        {"name": "1C_loss", "number": "1.C.1", "score": 1.0, "max_score": 4.0, "status": "failed",
         "output": "loss: got 2, expected 1\nHint: take the mean", "tags": ["1.C"],
         "visibility": "visible"},
    ]
    json.dumps(r, allow_nan=False)


def test_a_clean_log_has_no_error_row() -> None:
    r = results_json({**LOG, "errors": []})
    assert [t["number"] for t in r["tests"]] == ["1.A.1", "1.A.2", "1.C.1"]
    assert r["output"].startswith("rnn_and_grad: 4 / 7 points on the visible checks.")
    no_hidden = {**LOG, "errors": [], "checks": [c for c in LOG["checks"] if c["visibility"] == "visible"]}
    assert results_json(no_hidden)["output"] == "rnn_and_grad: 4 / 7 points."


def test_student_text_has_no_temporary_paths_and_says_what_to_upload() -> None:
    log = {**LOG, "score": 0.0, "checks": [{**c, "score": 0.0, "passed": False} for c in LOG["checks"]],
           "errors": [{"kind": "invalid_notebook",
                       "message": "/tmp/tmp.Xy12/submissions/submission/rnn_and_grad.ipynb: not a "
                                  "valid notebook (Expecting value)"}]}
    r = results_json(log)
    assert gradescope.validate_results(r) == []
    assert r["output"].splitlines()[0] == (
        "No notebook was graded: rnn_and_grad.ipynb: not a valid notebook (Expecting value). "
        "Upload rnn_and_grad.ipynb (in Jupyter or Colab: File > Download > .ipynb), then submit again.")
    assert r["tests"][0]["output"] == "rnn_and_grad.ipynb: not a valid notebook (Expecting value)"
    assert "/tmp" not in json.dumps(r) and "/autograder" not in json.dumps(r)
    assert gradescope.student_text("see /autograder/submission/hw/rnn_and_grad.ipynb, cell 3") == \
        "see rnn_and_grad.ipynb, cell 3"
    assert gradescope.student_text("shape (2, 3) / 4") == "shape (2, 3) / 4"


@pytest.mark.parametrize("bad, problem", [
    ([], "results must be a JSON object, not list"),
    ({"tests": []}, "'score' is required unless every test has one"),
    ({"score": "10"}, "'score' must be a finite number, not '10'"),
    ({"score": float("nan")}, "'score' must be a finite number, not nan"),
    ({"score": True}, "'score' must be a finite number, not True"),
    ({"score": 1, "visibility": "public"},
     "'visibility' must be one of hidden, after_due_date, after_published, visible, not 'public'"),
    ({"score": 1, "stdout_visibility": "yes"},
     "'stdout_visibility' must be one of hidden, after_due_date, after_published, visible, not 'yes'"),
    ({"score": 1, "output": 3}, "'output' must be a string"),
    ({"score": 1, "scores": 1}, "unknown top-level key 'scores'"),
    ({"score": 1, "tests": {}}, "'tests' must be a list"),
    ({"score": 1, "tests": [3]}, "tests[0] must be an object"),
    ({"score": 1, "tests": [{"name": "a", "score": 1}]}, "tests[0].max_score is required"),
    ({"score": 1, "tests": [{"score": 1, "max_score": 1}]}, "tests[0].name is required"),
    ({"score": 1, "tests": [{"name": 2, "score": 1, "max_score": 1}]}, "tests[0].name must be a string"),
    ({"score": 1, "tests": [{"name": "a", "score": "1", "max_score": 1}]},
     "tests[0].score must be a finite number, not '1'"),
    ({"score": 1, "tests": [{"name": "a", "score": 1, "max_score": 1, "output": None}]},
     "tests[0].output must be a string"),
    ({"score": 1, "tests": [{"name": "a", "score": 1, "max_score": 1, "visibility": "later"}]},
     "tests[0].visibility must be one of hidden, after_due_date, after_published, visible, not 'later'"),
    ({"score": 1, "tests": [{"name": "a", "score": 1, "max_score": 1, "status": "ok"}]},
     "tests[0].status must be 'passed' or 'failed'"),
    ({"score": 1, "tests": [{"name": "a", "score": 1, "max_score": 1, "tags": "1.A"}]},
     "tests[0].tags must be a list of strings"),
])
def test_validator_names_each_problem(bad: Any, problem: str) -> None:
    assert problem in gradescope.validate_results(bad)


def test_validator_accepts_the_documented_example() -> None:
    example = {"score": 44.0, "execution_time": 136, "output": "Text relevant to the entire submission",
               "output_format": "simple_format", "test_output_format": "text",
               "test_name_format": "text", "visibility": "after_due_date",
               "stdout_visibility": "visible", "extra_data": {},
               "tests": [{"score": 2.0, "max_score": 2.0, "status": "passed", "name": "Your name",
                          "name_format": "text", "number": "1.1", "output": "Giant multiline string",
                          "output_format": "text", "tags": ["tag1", "tag2"],
                          "visibility": "visible", "extra_data": {}}],
               "leaderboard": [{"name": "Accuracy", "value": 0.926}]}
    assert gradescope.validate_results(example) == []
    assert gradescope.validate_results({"tests": [{"name": "a", "score": 1, "max_score": 2}]}) == []


def test_gradescope_results_command(tmp_path: Path) -> None:
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "submission_log.json").write_text(json.dumps(LOG))
    r = grader_cli("gradescope-results", str(tmp_path / "alice"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"wrote {tmp_path / 'alice' / 'results.json'}: 4 points\n"
    written = json.loads((tmp_path / "alice" / "results.json").read_text())
    assert written == results_json(LOG)
    missing = grader_cli("gradescope-results", str(tmp_path / "bob"))
    assert missing.returncode == 3
    assert missing.stderr.strip() == f"grader: error: {tmp_path / 'bob'}: no readable submission log"


# -- the autograder zip, run as Gradescope would ------------------------------------------------

@pytest.fixture(scope="module")
def autograder_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gradescope") / "autograder.zip"
    r = grader_cli("gradescope-bundle", "rnn_and_grad", "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


def fake_autograder(zip_path: Path, tmp: Path, notebook: Path, upload_name: str) -> Path:
    """An /autograder tree: source/ (the zip, unpacked), submission/ (one upload), results/."""
    root = tmp / "autograder"
    (root / "submission").mkdir(parents=True)
    (root / "results").mkdir()
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(root / "source")
        for info in zf.infolist():  # extractall drops the mode bits Gradescope keeps
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(root / "source" / info.filename, mode)
    shutil.copyfile(root / "source" / "run_autograder", root / "run_autograder")
    os.chmod(root / "run_autograder", 0o755)
    shutil.copyfile(notebook, root / "submission" / upload_name)
    return root


def run_autograder(root: Path, unset: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """As Gradescope does, from /autograder; `grader` is this venv's (setup.sh is not run)."""
    env = {**{k: v for k, v in os.environ.items() if k not in unset},
           "AUTOGRADER_ROOT": str(root), "GRADER_ROOT": "",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([str(root / "run_autograder")], cwd=root, env=env, capture_output=True,
                          text=True, timeout=900)


def test_setup_sh_installs_the_assignments_requirements() -> None:
    setup = gradescope.setup_sh(("Torch==2.13.0", "tqdm>=4.66", "ipywidgets"))
    # torch (any spelling) from the CPU index first; then one resolver run with the grader.
    assert ("-m pip install Torch==2.13.0 --index-url \"$TORCH_INDEX\"\n"
            "\"$ROOT/venv/bin/python\" -m pip install \"$SOURCE/grader_src\" Torch==2.13.0 "
            "'tqdm>=4.66' ipywidgets\n") in setup
    plain = gradescope.setup_sh(("tqdm>=4.66",))
    assert '--index-url "$TORCH_INDEX"' not in plain  # no torch asked for: no CPU-index step
    assert "-m pip install \"$SOURCE/grader_src\" 'tqdm>=4.66'\n" in plain


def test_zip_layout(autograder_zip: Path) -> None:
    with zipfile.ZipFile(autograder_zip) as zf:
        names = set(zf.namelist())
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in zf.infolist()}
        setup = zf.read("setup.sh").decode()
        runner = zf.read("run_autograder").decode()
        bundled = zf.read("checks/assignment.yaml").decode()
    assert {"setup.sh", "run_autograder", "checks/assignment.yaml", "checks/probes.py",
            "checks/expected.json", "grader_src/pyproject.toml",
            "grader_src/grader/cli.py"} <= names
    assert modes["setup.sh"] == 0o755 and modes["run_autograder"] == 0o755
    assert 'TORCH_INDEX="${GRADER_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}"' in setup
    assert 'pip install torch==2.13.0 --index-url "$TORCH_INDEX"' in setup  # the YAML's requirements
    assert "'ipywidgets>=8.1'" in setup
    assert "python3.11-venv" not in setup and "grader_src/LICENSE" in names
    # No notebook-choosing of its own (it copied what a link pointed at): grader run's rule.
    assert runner.startswith("#!/usr/bin/env bash\n") and "find " not in runner
    assert "1C_loss_last_other_shape" in bundled  # hidden checks ship to Gradescope
    # Reproducible: fixed timestamps and order, so the same inputs give the same bytes.
    with zipfile.ZipFile(autograder_zip) as zf:
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert zf.namelist() == sorted(zf.namelist())
        files = {n: zf.read(n) for n in zf.namelist()}
    assert gradescope.write_zip(files) == autograder_zip.read_bytes()


def autograde(zip_path: Path, tmp: Path, notebook: Path, upload_name: str) -> dict[str, Any]:
    """Run the autograder on one upload; it must succeed and write a valid results.json."""
    root = fake_autograder(zip_path, tmp, notebook, upload_name)
    r = run_autograder(root)
    assert r.returncode == 0, r.stdout + r.stderr
    results: dict[str, Any] = json.loads((root / "results" / "results.json").read_text())
    assert gradescope.validate_results(results) == []
    return results


@pytest.mark.slow
def test_correct_notebook_scores_30(autograder_zip: Path, tmp_path: Path) -> None:
    # Uploaded under another name, as browsers do on a second download.
    results = autograde(autograder_zip, tmp_path, EXAMPLES / "full_marks_alt_layout" / "rnn_and_grad.ipynb",
                        "rnn_and_grad (2).ipynb")
    assert results["score"] == 30.0
    assert sum(t["max_score"] for t in results["tests"]) == 30.0
    hidden = [t for t in results["tests"] if t["visibility"] == "after_published"]
    assert hidden and all(t["output"] == "hidden check" for t in hidden)


@pytest.mark.slow
def test_untouched_template_scores_0(autograder_zip: Path, tmp_path: Path) -> None:
    results = autograde(autograder_zip, tmp_path, ROOT / "student_template" / "rnn_and_grad.ipynb",
                        "rnn_and_grad.ipynb")
    assert results["score"] == 0.0
    assert results["tests"][0]["name"] == "notebook runs without errors"
    assert "NotImplementedError" in results["tests"][0]["output"]


def test_autograder_fails_loudly_when_grader_cannot_run(autograder_zip: Path, tmp_path: Path) -> None:
    root = fake_autograder(autograder_zip, tmp_path, EXAMPLES / "full_marks_alt_layout" / "rnn_and_grad.ipynb",
                           "rnn_and_grad.ipynb")
    (root / "source" / "checks" / "expected.json").unlink()
    r = run_autograder(root)
    assert r.returncode == 4, r.stdout + r.stderr
    assert "cannot read expected values" in r.stderr
    assert not (root / "results" / "results.json").exists()


def test_setup_sh_is_executable_bash() -> None:
    for requirements in ((), ("torch==2.13.0", "tqdm>=4.66", "ipywidgets")):
        setup = gradescope.setup_sh(requirements)
        assert setup.startswith("#!/usr/bin/env bash\n")
        r = subprocess.run(["bash", "-n", "-c", setup], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    r = subprocess.run(["bash", "-n", "-c", gradescope.RUN_AUTOGRADER], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.slow
def test_data_assignment_ships_its_data_and_grades_accuracy(tmp_path: Path) -> None:
    """rnn_last_name: the names data travels in the zip; held-out accuracy is graded there."""
    zip_path = tmp_path / "last_name.zip"
    r = grader_cli("gradescope-bundle", "rnn_last_name", "--out", str(zip_path), "--data", str(NAMES_DATA))
    assert r.returncode == 0, r.stderr
    with zipfile.ZipFile(zip_path) as zf:
        shipped = sorted(n[len("data/"):] for n in zf.namelist() if n.startswith("data/"))
    assert shipped == sorted(p.relative_to(NAMES_DATA).as_posix() for p in NAMES_DATA.rglob("*") if p.is_file())
    root = fake_autograder(zip_path, tmp_path, ROOT / "reference" / "rnn_last_name.ipynb", "rnn_last_name.ipynb")
    r2 = run_autograder(root, unset=("GRADER_NAMES_DATA",))  # only the zip's data/ is there
    assert r2.returncode == 0, r2.stdout + r2.stderr
    results = json.loads((root / "results" / "results.json").read_text())
    assert gradescope.validate_results(results) == []
    assert results["score"] == sum(t["max_score"] for t in results["tests"]) > 0  # the reference: full marks
    accuracy = [t for t in results["tests"] if t["name"] == "2C_heldout_accuracy"]
    assert len(accuracy) == 1 and accuracy[0]["score"] == accuracy[0]["max_score"] > 0


# -- setup.sh, as Gradescope runs it when it builds the image ------------------------------------

def _shim(folder: Path, name: str, script: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("#!/bin/bash\n" + script)
    (folder / name).chmod(0o755)


def test_setup_sh_refuses_an_image_without_a_recent_python(autograder_zip: Path, tmp_path: Path) -> None:
    root = fake_autograder(autograder_zip, tmp_path, ROOT / "student_template" / "rnn_and_grad.ipynb",
                           "rnn_and_grad.ipynb")
    bin_dir = tmp_path / "bin"  # an image whose only python3 is 3.8
    _shim(bin_dir, "python3", 'case "$*" in *version_info*) exit 1;; *) echo "Python 3.8.10";; esac\n')
    (bin_dir / "dirname").symlink_to(shutil.which("dirname") or "/usr/bin/dirname")
    r = subprocess.run(["/bin/bash", str(root / "source" / "setup.sh")], capture_output=True, text=True,
                       env={"PATH": str(bin_dir), "AUTOGRADER_ROOT": str(root)}, timeout=60)
    assert r.returncode == 1
    assert r.stderr == ("setup.sh: no Python >= 3.10 on this image; choose Gradescope's Ubuntu 22.04 "
                        "or 24.04 base image\n")
    assert not (root / "venv").exists()


@pytest.mark.slow
def test_setup_sh_builds_the_venv_and_run_autograder_grades_with_it(autograder_zip: Path,
                                                                     tmp_path: Path) -> None:
    """The whole image build under a fake /autograder: the image's python3, torch from the index
    (here: this machine's wheel), the grader from grader_src/ (pinned backend, SPDX license)."""
    root = fake_autograder(autograder_zip, tmp_path, EXAMPLES / "full_marks_alt_layout" / "rnn_and_grad.ipynb",
                           "rnn_and_grad.ipynb")
    shims = tmp_path / "shims"
    _shim(shims, "apt-get", f'echo "$*" >> {tmp_path}/apt-get.log; exit 1\n')  # not needed here
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(AUTOGRADER_ROOT=str(root), GRADER_TORCH_INDEX="https://pypi.org/simple",
               PATH=os.pathsep.join([str(shims), "/usr/local/bin", "/usr/bin", "/bin"]))
    r = subprocess.run(["bash", str(root / "source" / "setup.sh")], capture_output=True, text=True,
                       env=env, timeout=1800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    python = subprocess.run(["python3", "--version"], capture_output=True, text=True, env=env).stdout
    assert f"setup.sh: using /usr/bin/python3 ({python.strip()})" in r.stdout
    assert not (tmp_path / "apt-get.log").exists()
    assert "grader, version 0.1.0" in r.stdout
    assert "protections on" in r.stdout or "some sandbox protections are off" in r.stdout
    graded = subprocess.run([str(root / "run_autograder")], cwd=root, capture_output=True, text=True,
                            env={**env, "GRADER_ROOT": ""}, timeout=900)  # PATH has no other grader
    assert graded.returncode == 0, graded.stdout[-3000:] + graded.stderr[-3000:]
    results = json.loads((root / "results" / "results.json").read_text())
    assert gradescope.validate_results(results) == []
    assert results["score"] == 30.0


@pytest.mark.slow
def test_a_linked_upload_is_refused_not_graded(autograder_zip: Path, tmp_path: Path) -> None:
    """An upload holding a link to the reference (or a classmate's file) scores 0, and the
    student is told what to upload; before, the fallback copied the file the link named."""
    root = fake_autograder(autograder_zip, tmp_path, EXAMPLES / "untouched_stub" / "rnn_and_grad.ipynb",
                           "notes.txt")
    (root / "submission" / "notes.txt").unlink()
    # Relative, as a student's checkout can hold: student text never shows a temporary path.
    (root / "submission" / "homework.ipynb").symlink_to(Path("..") / "classmate" / "rnn_and_grad.ipynb")
    r = run_autograder(root)
    assert r.returncode == 0, r.stdout + r.stderr
    results = json.loads((root / "results" / "results.json").read_text())
    assert gradescope.validate_results(results) == []
    assert results["score"] == 0.0
    first = results["tests"][0]
    assert first["name"] == "notebook runs without errors"
    assert first["output"] == ("homework.ipynb is a symbolic link (to "
                               "../classmate/rnn_and_grad.ipynb); links are not graded: upload "
                               "the notebook file itself")
