"""Authoring an assignment from the docs alone (issue 19).

The schema names every unknown key with its closest known one; ``grader new`` scaffolds an
assignment that builds and grades at once; ``grader build`` refuses the silent mistakes
(an output its probe never returns, a check that depends on the student's random state); a
hidden check's full explanation reaches the instructor and no student-facing output.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest

from grader import spec, spec_schema
from grader.course import DEFAULT_PACKAGE
from grader.errors import SpecError
from grader.publish import student_package
from grader.publish.template import notebook_text, read_notebook, replace_blocks
from tests.conftest import ROOT, grader_cli

TOY = ROOT / "tests" / "toy" / "assignments" / "nearest_centroid"
NAME = "softmax_demo"


def _toy_with(tmp_path: Path, old: str, new: str) -> Path:
    folder = tmp_path / "assignments" / "nearest_centroid"
    shutil.copytree(TOY, folder)
    path = folder / "assignment.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return folder


@pytest.mark.parametrize("old, new, message", [
    ("limits:", "limts:", "limts: `limts`: unknown key; did you mean `limits`?"),
    ("  cell_seconds: 30", "  cell_secnds: 30",
     "limits.cell_secnds: `cell_secnds`: unknown key; did you mean `cell_seconds`?"),
    ("  holdout_fraction: 0.2", "  holdout_fracton: 0.2",
     "data.holdout_fracton: `holdout_fracton`: unknown key; did you mean `holdout_fraction`?"),
    ("    points: 2\n", "    pionts: 2\n",
     "checks[0].pionts: `pionts`: unknown key; did you mean `points`?"),
    ("      k: 3", "      k: {array: normal, shape: [2], seed: 1, sclae: 2}",
     "checks[0].args.k.sclae: `sclae`: unknown key; did you mean `scale`?"),
    ("schema_version: 1\n", "schema_version: 1\nbanana: 2\n", "banana: unknown field"),
])
def test_unknown_keys_are_named_at_every_level(tmp_path: Path, old: str, new: str,
                                               message: str) -> None:
    folder = _toy_with(tmp_path, old, new)
    with pytest.raises(SpecError) as err:
        spec.load(folder)
    assert str(err.value) == f"{folder / 'assignment.yaml'}: {message}"


def test_a_typo_stops_the_build_with_exit_4_naming_file_and_field(tmp_path: Path) -> None:
    _toy_with(tmp_path, "limits:", "limts:")
    shutil.copytree(TOY.parent.parent / "reference", tmp_path / "reference")
    r = grader_cli("build", "--course", str(tmp_path))
    assert r.returncode == 4, r.stderr
    assert r.stderr == (f"grader: error: {tmp_path}/assignments/nearest_centroid/assignment.yaml: "
                        "limts: `limts`: unknown key; did you mean `limits`?\n")


def test_the_schema_lists_every_key_the_loader_reads() -> None:
    data = spec_schema.schema()["$defs"]["data"]["properties"]
    assert set(data) == {*spec._DATA_COMMON, *(k for keys in spec.DATA_KINDS.values() for k in keys)}
    # Every shipped spec passes it: the bundled course, the toy, the second course.
    folders = [*ROOT.glob("assignments/*"), TOY, *ROOT.glob("courses/*/assignments/*")]
    for folder in folders:
        raw = __import__("yaml").safe_load((folder / "assignment.yaml").read_text())
        assert spec_schema.problems(raw) == ([], []), folder
    assert DEFAULT_PACKAGE == student_package.DIST_NAME


# -- grader new, grader build's proof, hidden explanations ---------------------------------------

@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A course made by ``grader new`` alone, then built."""
    root = tmp_path_factory.mktemp("new_course")
    r = grader_cli("new", NAME, cwd=root)
    assert r.returncode == 0, r.stderr
    r = grader_cli("build", cwd=root)
    assert r.returncode == 0, r.stderr
    return root


def _copy(course: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "course"
    shutil.copytree(course, copy, ignore=shutil.ignore_patterns("student_template"))
    return copy


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.slow
def test_new_builds_and_grades_reference_full_and_stub_zero(course: Path, tmp_path: Path) -> None:
    subs = tmp_path / "submissions"
    for student, source in (("reference", course / "reference"),
                            ("stub", course / "student_template")):
        (subs / student).mkdir(parents=True)
        shutil.copy(source / f"{NAME}.ipynb", subs / student)
    r = grader_cli("run", str(subs), "--course", str(course), "-j", "2")
    assert r.returncode == 0, r.stderr
    logs = {s: json.loads((tmp_path / "grades" / s / "submission_log.json").read_text())
            for s in ("reference", "stub")}
    assert (logs["reference"]["score"], logs["reference"]["max_score"]) == (6.0, 6.0)
    assert logs["stub"]["score"] == 0.0
    by_name = {c["name"]: c for c in logs["stub"]["checks"]}
    assert by_name["softmax_values"]["message"] == (
        "not implemented: your code still raises NotImplementedError (softmax)")
    assert by_name["softmax_gradient"]["detail"] == (
        "not implemented: your code still raises NotImplementedError (softmax)")
    assert grader_cli("build", "--check-only", cwd=course).returncode == 0  # reproducible


@pytest.mark.slow
def test_build_names_an_output_the_probe_never_returns(course: Path, tmp_path: Path) -> None:
    copy = _copy(course, tmp_path)
    _edit(copy / "assignments" / NAME / "assignment.yaml", "outputs: [probabilities]\n    hint",
          "outputs: [probabilities, entropy]\n    hint")
    r = grader_cli("build", "--course", str(copy))
    assert r.returncode == 4
    assert (f"{copy}/assignments/{NAME}/assignment.yaml: checks[0] (softmax_values): outputs "
            "lists `entropy`, which probe `softmax_values` never returns (it returns "
            "`probabilities`, `shape`)") in r.stderr
    assert "1 problem" in r.stderr and not (copy / "student_template").exists()


@pytest.mark.slow
def test_build_refuses_a_check_that_depends_on_the_students_random_state(
        course: Path, tmp_path: Path) -> None:
    copy = _copy(course, tmp_path)
    folder = copy / "assignments" / NAME
    with (folder / "probes.py").open("a") as f:
        f.write("\n\ndef softmax_of_a_layer(ns, *, x):\n    import torch\n"
                "    layer = torch.nn.Linear(5, 5)  # left at its random initialisation\n"
                "    return {'p': detached(need(ns, 'softmax')(layer(tensor(x))))}\n")
    with (folder / "assignment.yaml").open("a") as f:
        f.write("  - {name: softmax_after_layer, question: Q1, visibility: hidden, points: 1,\n"
                "     probe: softmax_of_a_layer, args: {x: {array: normal, shape: [2, 5], seed: 9}}}\n")
    r = grader_cli("build", "--course", str(copy))
    assert r.returncode == 4
    assert (f"{folder}/assignment.yaml: checks[4] (softmax_after_layer): depends on the "
            "student's random state: set parameters with `fill_` or seed in the probe") in r.stderr
    assert "1 problem" in r.stderr


# A softmax without the max subtracted: right on the visible checks, overflows on large inputs.
NAIVE = "e = x.exp()\nreturn e / e.sum(dim=-1, keepdim=True)\n"


@pytest.mark.slow
def test_a_hidden_explanation_reaches_the_instructor_and_no_student(course: Path,
                                                                    tmp_path: Path) -> None:
    reference = course / "reference" / f"{NAME}.ipynb"
    naive = replace_blocks(read_notebook(reference), source_name=str(reference),
                           replacements={"softmax": NAIVE})
    (tmp_path / "subs" / "naive").mkdir(parents=True)
    (tmp_path / "subs" / "naive" / f"{NAME}.ipynb").write_text(notebook_text(naive))
    grades = tmp_path / "grades"
    r = grader_cli("run", str(tmp_path / "subs"), "--course", str(course), "--out", str(grades))
    assert r.returncode == 0, r.stderr
    log: dict[str, Any] = json.loads((grades / "naive" / "submission_log.json").read_text())
    check = {c["name"]: c for c in log["checks"]}["softmax_large_inputs"]
    assert (check["passed"], check["message"]) == (False, "failed (hidden check: details are not shown)")
    detail = check["detail"]
    assert detail.startswith("probabilities: ") and "nan" in detail, detail
    table_line = detail.splitlines()[1]  # the got | expected table's first row
    # The instructor: the log and grader report.
    report = grader_cli("report", str(grades))
    assert "failed hidden checks (not shown to students)" in report.stdout
    assert "softmax_large_inputs" in report.stdout and detail.splitlines()[0][:40] in report.stdout
    # The student: the feedback page, Gradescope's results.json, the student package.
    page = (grades / "naive" / "feedback.html").read_text()
    r = grader_cli("gradescope-results", str(grades / "naive"), "--out", str(tmp_path / "results.json"))
    assert r.returncode == 0, r.stderr
    results = (tmp_path / "results.json").read_text()
    template = course / "student_template"
    shipped = [p.read_bytes() for p in template.rglob("*") if p.is_file() and p.suffix != ".whl"]
    with zipfile.ZipFile(template / student_package.wheel_name()) as wheel:
        shipped += [wheel.read(n) for n in wheel.namelist()]
    for text in (page, results, *(b.decode("utf-8", "replace") for b in shipped)):
        assert table_line not in text and detail.splitlines()[0] not in text
    assert all(b"softmax_large_inputs" not in b for b in shipped)
    assert "softmax_large_inputs" in page  # named, without its details


def test_requirements_reach_grading_and_the_student_wheel() -> None:
    from grader import course

    bundled = spec.load_all(ROOT)
    assert course.requirements(bundled) == ("torch==2.13.0", "ipywidgets>=8.1", "tqdm>=4.66")
    # The wheel keeps its loose torch>=2.1 (Colab's torch stays): the course's pin is left out.
    specs = [p.read_bytes() for p in sorted((ROOT / "student_template" / "checks").glob("*/assignment.yaml"))]
    assert course.student_requirements(specs) == ("ipywidgets>=8.1", "tqdm>=4.66")
    with zipfile.ZipFile(ROOT / "student_template" / student_package.wheel_name()) as wheel:
        metadata = wheel.read(f"grader_checks-{__import__('grader').__version__}.dist-info/METADATA")
    requires = [line for line in metadata.decode().splitlines() if line.startswith("Requires-Dist")]
    assert "Requires-Dist: ipywidgets>=8.1" in requires and "Requires-Dist: tqdm>=4.66" in requires
    assert "Requires-Dist: torch>=2.1,<3" in requires and not any("torch==" in r for r in requires)
    r = grader_cli("requirements")
    assert r.stdout == "torch==2.13.0\nipywidgets>=8.1\ntqdm>=4.66\n"
    from grader.grading.plan import warm_up_for  # and the warm worker imports them once

    assert warm_up_for(bundled)["preload"] == ("ipywidgets", "tqdm", "tqdm.auto", "torch")
