"""A toy course that is no course's (tests/toy/): the grader needs nothing of CS182.

Its assignment is a nearest-centroid classifier in a few lines of numpy, its data set is the
``generated`` kind (a seeded function in the assignment's folder), and it has a visible and a
hidden compare check and an accuracy check. The course is copied, its template built, and the
reference, the untouched template and a buggy variant graded, exactly.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from grader import datasets, spec
from grader.errors import InputError, SpecError
from grader.grading.run import GradingSession
from grader.publish.template import build_templates, notebook_text, read_notebook, replace_blocks
from grader.submission import student_dirs
from tests.conftest import ROOT, grader_cli
from tests.toy import make_toy

pytestmark = pytest.mark.slow
TOY = ROOT / "tests" / "toy"
NAME = make_toy.NAME
# Only the first coordinate counts: the circle and triangle blobs (same x) are confused.
BUGGY_PREDICT = """
distances = (X[:, None, 0] - C[None, :, 0]) ** 2
return distances.argmin(axis=1)
"""


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("toy") / "course"
    for part in ("assignments", "reference"):
        shutil.copytree(TOY / part, root / part, ignore=shutil.ignore_patterns("__pycache__"))
    return root


@pytest.fixture(scope="module")
def graded(course: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    base = tmp_path_factory.mktemp("toy_grades")
    template_dir = base / "template"
    build_templates(reference_dir=course / "reference", template_dir=template_dir)
    reference = course / "reference" / f"{NAME}.ipynb"
    subs = base / "submissions"
    for student in ("reference", "stub", "buggy"):
        (subs / student).mkdir(parents=True)
    shutil.copy(reference, subs / "reference")
    shutil.copy(template_dir / f"{NAME}.ipynb", subs / "stub")
    buggy = replace_blocks(read_notebook(reference), source_name=str(reference),
                           replacements={"predict": BUGGY_PREDICT})
    (subs / "buggy" / f"{NAME}.ipynb").write_text(notebook_text(buggy), encoding="utf-8")
    a = spec.find(course, NAME)
    with GradingSession(root=course, assignment=a, out_dir=base / "grades", jobs=2) as session:
        results = session.grade(student_dirs(subs), jobs=2)
    return {r.log.student: r.log.as_dict() for r in results}


def checks(log: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in log["checks"]}


def test_the_reference_notebook_is_what_make_toy_writes() -> None:
    assert (TOY / "reference" / f"{NAME}.ipynb").read_text(encoding="utf-8") == make_toy.text()


def test_reference_gets_full_marks(graded: dict[str, dict[str, Any]]) -> None:
    log = graded["reference"]
    assert (log["score"], log["max_score"]) == (10.0, 10.0), log["checks"]
    assert checks(log)["heldout_accuracy"]["message"] == (
        "held-out accuracy 93.3% on 45 examples: 5 of 5 points (0 at 50%, full at 90%)")
    assert log["errors"] == []


def test_untouched_template_gets_zero_and_says_not_implemented(graded: dict[str, dict[str, Any]]) -> None:
    log = checks(graded["stub"])
    assert graded["stub"]["score"] == 0.0
    assert log["centroids_small"]["message"] == (
        "not implemented: your code still raises NotImplementedError (centroids)")
    assert log["predict_nearest"]["message"] == (
        "not implemented: your code still raises NotImplementedError (predict)")
    assert log["centroids_more_classes"]["message"] == "failed (hidden check: details are not shown)"
    assert log["heldout_accuracy"]["message"] == (
        "C is not defined (code cell 4 (`C = centroids(…`), which defines it, raised "
        "NotImplementedError: centroids)")


def test_a_buggy_predict_loses_its_check_and_part_of_the_accuracy(graded: dict[str, dict[str, Any]]) -> None:
    log = checks(graded["buggy"])
    assert {n for n, c in log.items() if not c["passed"]} == {"predict_nearest", "heldout_accuracy"}
    assert log["heldout_accuracy"]["message"] == (
        "held-out accuracy 66.7% on 45 examples: 2.0833 of 5 points (0 at 50%, full at 90%)")
    assert graded["buggy"]["score"] == 5.0833  # both centroids checks (3) and part of 5


def test_held_out_labels_are_never_staged(course: Path, tmp_path: Path) -> None:
    prepared = datasets.prepare(spec.find(course, NAME), None)
    assert prepared is not None
    prepared.stage(tmp_path)
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["data/blobs/train.npz"]
    staged = tmp_path / files[0]
    with np.load(staged, allow_pickle=False) as z:
        assert sorted(z.files) == ["classes", "inputs", "labels"]
        inputs, labels = z["inputs"], z["labels"]
    assert len(inputs) == len(labels) == len(prepared.visible) == 135
    held = prepared.held_out.inputs
    assert isinstance(held, np.ndarray) and len(held) == 45
    assert not (inputs[:, None, :] == held[None, :, :]).all(axis=2).any()
    (key,) = prepared.probe_args
    assert set(prepared.probe_args[key]) == {"examples"}  # inputs only, never labels


def test_build_and_check_from_the_template(course: Path) -> None:
    """``grader build`` ships the visible checks, the generator and the visible data; ``grader
    check`` grades the untouched template with them, and the reference from the course."""
    r = grader_cli("build", "--root", str(course))
    assert r.returncode == 0, r.stderr
    template = course / "student_template"
    bundle = template / "checks" / NAME
    assert sorted(p.name for p in bundle.iterdir()) == [
        "assignment.yaml", "expected.json", "make_data.py", "probes.py"]
    assert "centroids_more_classes" not in (bundle / "assignment.yaml").read_text()
    assert (template / "data" / "blobs" / "train.npz").is_file()
    r = grader_cli("check", str(template / f"{NAME}.ipynb"), cwd=course)
    assert r.returncode == 0, r.stderr
    assert f"{NAME}: 0 / 4 points (visible checks only)" in r.stdout, r.stdout
    assert "not implemented: your code still raises NotImplementedError (centroids)" in r.stdout
    r = grader_cli("check", str(course / "reference" / f"{NAME}.ipynb"), cwd=course)
    assert r.returncode == 0, r.stderr
    assert f"{NAME}: 4 / 4 points (visible checks only)" in r.stdout, r.stdout
    r = grader_cli("build", "--root", str(course), "--check-only")
    assert r.returncode == 0, r.stdout + r.stderr  # the build is reproducible


# -- issue 18, 2: the held-out part from a private folder outside the course -------------------

def _private_course(course: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The toy course with its blobs as a table: 135 public in the assignment, 45 private
    (and one public example again, which is no secret) in a folder outside the course."""
    from grader.datasets.base import Examples
    from grader.datasets.table import write_npz_examples

    root, private = tmp_path / "course", tmp_path / "instructor_only"
    shutil.copytree(course, root, ignore=shutil.ignore_patterns("student_template"))
    folder = root / "assignments" / NAME
    x, y, classes = make_data().generate(7, per_class=60, spread=1.3)
    (folder / "data" / "blobs").mkdir(parents=True)
    private.mkdir()
    write_npz_examples(folder / "data" / "blobs" / "train.npz", Examples(x[:135], y[:135], classes),
                       "inputs", "labels", False)
    write_npz_examples(private / "train.npz", Examples(x[134:], y[134:], classes),
                       "inputs", "labels", False)
    text = (folder / "assignment.yaml").read_text()
    old = text[text.index("data:\n"):text.index("questions:")]
    (folder / "assignment.yaml").write_text(text.replace(old, (
        "data:\n  kind: table\n  name: blobs\n  file: train.npz\n  label: labels\n"
        f"  path: data/blobs\n  holdout_path: {private}\n  holdout_env: TOY_HELD_OUT\n\n")))
    return root, private


def make_data() -> Any:
    return datasets.load_module(TOY / "assignments" / NAME / "make_data.py")


def test_a_private_held_out_folder_is_scored_and_never_staged(
        course: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOY_HELD_OUT", raising=False)
    root, private = _private_course(course, tmp_path)
    a = spec.find(root, NAME)
    prepared = datasets.prepare(a, None)
    assert prepared is not None
    x, y, _ = make_data().generate(7, per_class=60, spread=1.3)
    # Every public example is the student's; the private one repeated from it is not scored.
    assert len(prepared.visible) == 135 and len(prepared.held_out) == 45
    assert np.array_equal(np.asarray(prepared.held_out.inputs), x[135:])
    prepared.stage(tmp_path / "work")
    with np.load(tmp_path / "work" / "data" / "blobs" / "train.npz", allow_pickle=False) as z:
        assert np.array_equal(z["inputs"], x[:135])
    # The reference scores on the private examples what its centroids of the public ones give.
    centres = np.stack([x[:135][y[:135] == c].mean(axis=0) for c in range(3)])
    got = ((x[135:, None, :] - centres[None]) ** 2).sum(axis=2).argmin(axis=1)
    accuracy = float((got == y[135:]).mean())
    subs = tmp_path / "submissions" / "reference"
    subs.mkdir(parents=True)
    shutil.copy(root / "reference" / f"{NAME}.ipynb", subs)
    with GradingSession(root=root, assignment=a, out_dir=tmp_path / "grades", jobs=1) as session:
        (result,) = session.grade(student_dirs(subs.parent), jobs=1)
    check = checks(result.log.as_dict())["heldout_accuracy"]
    assert check["message"].startswith(f"held-out accuracy {accuracy:.1%} on 45 examples: ")
    # Grading again from another private copy named by the environment changes the truth.
    moved = tmp_path / "elsewhere"
    shutil.copytree(private, moved)
    monkeypatch.setenv("TOY_HELD_OUT", str(moved))
    again = datasets.prepare(a, None)
    assert again is not None and again.fingerprint == prepared.fingerprint
    shutil.rmtree(moved)
    with pytest.raises(InputError) as info:
        datasets.prepare(a, None)
    assert str(info.value) == f"{moved}: no held-out blobs data there (from $TOY_HELD_OUT)"
    monkeypatch.delenv("TOY_HELD_OUT")
    shutil.rmtree(private)
    with pytest.raises(InputError) as info:
        datasets.prepare(a, None)
    assert str(info.value) == (
        f"{private}: no held-out blobs data there (from data.holdout_path in "
        f"{a.directory / 'assignment.yaml'}; or set TOY_HELD_OUT)")


def test_a_private_held_out_folder_takes_no_fraction(course: Path, tmp_path: Path) -> None:
    root, _ = _private_course(course, tmp_path)
    yaml_path = root / "assignments" / NAME / "assignment.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("  holdout_env:", "  holdout_fraction: 0.2\n  holdout_env:"))
    with pytest.raises(SpecError) as info:
        spec.find(root, NAME)
    assert str(info.value) == (
        f"{yaml_path}: data.holdout_fraction: not used with data.holdout_path or "
        "data.holdout_env (the private file is the held-out part)")


def test_the_template_ships_the_public_part_and_not_the_private_path(
        course: Path, tmp_path: Path) -> None:
    root, private = _private_course(course, tmp_path)
    r = grader_cli("build", "--root", str(root))
    assert r.returncode == 0, r.stderr
    template = root / "student_template"
    assert (template / "data" / "blobs" / "train.npz").read_bytes() == (
        root / "assignments" / NAME / "data" / "blobs" / "train.npz").read_bytes()
    shipped = (template / "checks" / NAME / "assignment.yaml").read_text()
    assert "holdout" in shipped and str(private) not in shipped and "TOY_HELD_OUT" not in shipped
    data = yaml.safe_load(shipped)["data"]
    assert (data["holdout_fraction"], data["path"]) == (0, "../../data/blobs")
    r = grader_cli("check", str(root / "reference" / f"{NAME}.ipynb"), cwd=root)
    assert r.returncode == 0, r.stderr
    assert f"{NAME}: 4 / 4 points (visible checks only)" in r.stdout, r.stdout
