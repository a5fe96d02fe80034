"""The student wheel (grader.publish.student_package): what is in it, and that it works alone.

The slow tests make a fresh venv (no --system-site-packages, no instructor checkout on its
path), install torch (this machine's CPU wheel), the template's wheel and what the course's
notebooks import, then check a notebook as a student would and list what was installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from grader.publish import student_package
from tests.conftest import EXAMPLES, ROOT
from tests.student_env import clean_env, student_python

TEMPLATE = ROOT / "student_template"
WHEEL = TEMPLATE / student_package.wheel_name()
CORRECT = EXAMPLES / "full_marks_alt_layout" / "rnn_and_grad.ipynb"
# What never ships to students: the sandbox, the instructor's CLI, grading a class, publishing.
GRADER_ONLY = ("grader/sandbox/", "grader/cli.py", "grader/grading/run.py",
               "grader/grading/selfcheck.py", "grader/grading/expected.py", "grader/publish/",
               "grader/reports/class_report.py", "grader/reports/similarity")


def hidden_check_names() -> list[str]:
    names = []
    for path in sorted((ROOT / "assignments").glob("*/assignment.yaml")):
        raw = yaml.safe_load(path.read_text())
        names += [c["name"] for c in raw["checks"]
                  if c.get("visibility") == "hidden" or c.get("kind") == "accuracy"]
    assert names, "no hidden checks to look for"
    return names


def test_the_wheel_holds_the_checks_package_and_nothing_else() -> None:
    with zipfile.ZipFile(WHEEL) as zf:
        names = zf.namelist()
        contents = {n: zf.read(n) for n in names}
    modules = sorted(n for n in names if n.startswith("grader/") and n.endswith(".py")
                     and not n.startswith("grader/checks/"))
    assert modules == sorted(f"grader/{m}.py" for m in student_package.MODULES)
    for name in names:  # the sandbox, grading a class, publishing: the grader's side only
        assert not name.startswith(GRADER_ONLY), name
    # The library alone: the course's checks travel in the notebooks (metadata) and checks/.
    assert not [n for n in names if n.startswith("grader/checks/")]
    for name, content in contents.items():
        assert not name.startswith("reference/") and ".ipynb" not in name
        for hidden in hidden_check_names():
            assert hidden.encode() not in content, f"{hidden} in {name}"
    meta = contents["grader_checks-0.1.0.dist-info/METADATA"].decode()
    assert "Requires-Dist: torch<3,>=2.1\n" in meta or "Requires-Dist: torch>=2.1,<3\n" in meta
    assert "torch==" not in meta
    assert "License-Expression: MIT\n" in meta and "Requires-Python: >=3.10\n" in meta
    assert WHEEL.stat().st_size < 100_000


def test_the_wheel_is_reproducible_and_its_record_is_right(tmp_path: Path) -> None:
    import base64
    import hashlib

    checks = {p: p.read_bytes() for p in (TEMPLATE / "checks").rglob("*") if p.is_file()}
    first = student_package.template_wheel(template_dir=TEMPLATE, checks=checks)
    second = student_package.template_wheel(template_dir=TEMPLATE, checks=checks)
    assert first == second
    [content] = first.values()
    path = tmp_path / "w.whl"
    path.write_bytes(content)
    with zipfile.ZipFile(path) as zf:
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        record = zf.read("grader_checks-0.1.0.dist-info/RECORD").decode().splitlines()
        for line in record[:-1]:
            name, digest, size = line.rsplit(",", 2)
            data = zf.read(name)
            assert digest == "sha256=" + base64.urlsafe_b64encode(
                hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert int(size) == len(data)
        assert record[-1] == "grader_checks-0.1.0.dist-info/RECORD,,"
        assert len(record) == len(zf.namelist())


def test_the_template_wheel_is_up_to_date() -> None:
    """`grader build` rewrites it; this says when the grader's code has moved on since."""
    checks = {p: p.read_bytes() for p in (TEMPLATE / "checks").rglob("*") if p.is_file()}
    assert student_package.stale_wheel(template_dir=TEMPLATE, checks=checks) == {}, (
        f"{WHEEL.name} is stale: run `grader build`")


def solution_lines() -> list[str]:
    """Distinctive lines of the reference solutions (between the solution markers)."""
    import nbformat

    lines = []
    for path in sorted((ROOT / "reference").glob("*.ipynb")):
        for cell in nbformat.read(str(path), as_version=4).cells:
            inside = False
            for line in cell.source.splitlines() if cell.cell_type == "code" else []:
                text = line.strip()
                if text.startswith("# BEGIN SOLUTION"):
                    inside = True
                elif text.startswith("# END SOLUTION"):
                    inside = False
                elif (inside or text.endswith("# SOLUTION")) and len(text) >= 30:
                    lines.append(text.removesuffix("# SOLUTION").strip())
    return lines


# -- a fresh venv, as a student's machine -----------------------------------------------------

@pytest.fixture(scope="module")
def student_venv() -> Path:
    return student_python()


@pytest.mark.slow
def test_fresh_venv_check_cell_runs_in_a_kernel(student_venv: Path, tmp_path: Path) -> None:
    """The template's check cell in a Jupyter kernel of the fresh venv, far from any checkout."""
    work = tmp_path / "colab"
    work.mkdir()
    nb = json.loads(CORRECT.read_text())
    # The wheel carries no course content: the checks come in the notebook, as the template's do.
    nb["metadata"]["grader"] = json.loads((TEMPLATE / "rnn_and_grad.ipynb").read_text())["metadata"]["grader"]
    nb["cells"].append({"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                        "source": "from grader import notebook as checks\nchecks.check_all()\n"})
    (work / "homework.ipynb").write_text(json.dumps(nb))
    script = """
import json, sys, nbformat, grader
from nbclient import NotebookClient
nb = nbformat.read("homework.ipynb", as_version=4)
NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True).execute()
outs = nb.cells[-1].outputs
print(json.dumps({"grader": grader.__file__, "outputs": [dict(o) for o in outs]}))
"""
    r = subprocess.run([str(student_venv), "-c", script], cwd=work, capture_output=True, text=True,
                       env=clean_env(student_venv), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout.splitlines()[-1])
    assert str(ROOT) not in result["grader"]  # the installed package, not this checkout
    [shown] = [o for o in result["outputs"] if o["output_type"] == "display_data"]
    text = shown["data"]["text/plain"].splitlines()
    assert text[0] == "rnn_and_grad: 15 / 15 points (visible checks only)"
    assert text[1:] == [f"PASS {q} {n} ({p}/{p})" for q, n, p in [
        ("1.A", "1A_parameter_count", 1), ("1.A", "1A_forward_tanh", 3),
        ("1.B", "1B_parameter_count", 1), ("1.B", "1B_forward", 4),
        ("1.C", "1C_loss_all", 3), ("1.C", "1C_loss_last", 3)]]


@pytest.mark.slow
def test_fresh_venv_grader_check_command(student_venv: Path, tmp_path: Path) -> None:
    repo = tmp_path / "my-homework"
    shutil.copytree(TEMPLATE, repo)
    shutil.rmtree(repo / "checks")  # the installed package's bundles are enough
    r = subprocess.run([str(student_venv.parent / "grader-check"), "rnn_and_grad.ipynb"], cwd=repo,
                       capture_output=True, text=True, env=clean_env(student_venv), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert lines[0] == "rnn_and_grad: 0 / 15 points (visible checks only)"
    assert "     not implemented: your code still raises NotImplementedError (1.A init)" in lines


@pytest.mark.slow
def test_fresh_venv_holds_no_hidden_check_and_no_reference(student_venv: Path) -> None:
    script = """
import json, importlib.metadata as m
d = m.distribution("grader-checks")
print(json.dumps({"site": str(d.locate_file("")),
                  "files": [str(d.locate_file(f)) for f in d.files]}))
"""
    r = subprocess.run([str(student_venv), "-c", script], capture_output=True, text=True,
                       env=clean_env(student_venv), timeout=120)
    assert r.returncode == 0, r.stderr
    listing = json.loads(r.stdout)
    site = Path(listing["site"])
    installed = [Path(os.path.normpath(p)) for p in listing["files"]]
    assert site / "grader" / "notebook.py" in installed
    assert student_venv.parent / "grader-check" in installed  # the CLI entry point
    package_files = sorted(p for p in (site / "grader").rglob("*") if p.is_file()
                           and "__pycache__" not in p.parts)
    # Nothing but what the wheel listed is in the package folder.
    assert package_files == sorted(p for p in installed if "grader" in p.parts
                                   and p.suffix != ".pyc" and (site / "grader") in p.parents)
    hidden = hidden_check_names()
    for path in installed:
        if not path.is_file() or path.suffix == ".pyc":
            continue
        text = path.read_bytes()
        for name in hidden:
            assert name.encode() not in text, f"hidden check {name} in {path}"
        assert "reference" not in path.parts
    solution = solution_lines()
    assert solution
    for path in installed:
        if path.is_file() and path.suffix in (".py", ".json", ".yaml"):
            text = path.read_text(errors="replace")
            assert not [s for s in solution if s in text], path
    shipped = [p.relative_to(site).as_posix() for p in package_files]
    assert not [p for p in shipped if p.startswith(GRADER_ONLY)]
    assert "grader/student/cli.py" in shipped  # grader-check's, not the instructor's CLI


@pytest.mark.slow
def test_fresh_venv_template_first_cell_installs_then_checks(student_venv: Path, tmp_path: Path) -> None:
    """The first cell as the template carries it, in a kernel where the package is missing:
    it installs the wheel beside the notebook, and the check cell then runs."""
    ready = student_venv.parent.parent / "ready"
    ready.unlink()  # the venv is incomplete until the cell has put the package back
    r = subprocess.run([str(student_venv), "-m", "pip", "uninstall", "-y", "-q", "grader-checks"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    repo = tmp_path / "my-homework"
    shutil.copytree(TEMPLATE, repo)
    nb = json.loads(CORRECT.read_text())
    cell = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None}
    template_nb = json.loads((TEMPLATE / "rnn_and_grad.ipynb").read_text())
    nb["metadata"]["grader"] = template_nb["metadata"]["grader"]
    setup = template_nb["cells"][0]
    assert setup["metadata"] == {"grader": {"cell": "setup"}}
    nb["cells"] = ([{**cell, "source": "".join(setup["source"])}] + nb["cells"]
                   + [{**cell, "source": 'checks.check("1.C")\n'}])
    (repo / "rnn_and_grad.ipynb").write_text(json.dumps(nb))
    script = """
import json, nbformat
from nbclient import NotebookClient
nb = nbformat.read("rnn_and_grad.ipynb", as_version=4)
NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True).execute()
print(json.dumps([[dict(o) for o in c.outputs] for c in (nb.cells[0], nb.cells[-1])]))
"""
    r = subprocess.run([str(student_venv), "-c", script], cwd=repo, capture_output=True, text=True,
                       env=clean_env(student_venv), timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    first, last = json.loads(r.stdout.splitlines()[-1])
    assert not [o for o in first if o["output_type"] == "error"], first
    [shown] = [o for o in last if o["output_type"] == "display_data"]
    assert shown["data"]["text/plain"].splitlines() == [
        "rnn_and_grad 1.C: 6 / 6 points (visible checks only)",
        "PASS 1.C 1C_loss_all (3/3)", "PASS 1.C 1C_loss_last (3/3)"]
    check = subprocess.run([str(student_venv), "-m", "pip", "show", "grader-checks"],
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0 and "Version: 0.1.0" in check.stdout
    ready.write_text("")
