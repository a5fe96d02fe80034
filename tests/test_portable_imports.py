"""What runs on a student's Mac or Windows machine, or reads logs anywhere, imports no sandbox.

The sandbox (``grader.sandbox``: libc through ctypes, Linux's resource limits, terminal control)
starts only where a submission is run in it. Each test runs a fresh interpreter whose
``sys.modules`` holds None for those modules, so importing any of them raises ImportError, as
on a machine that lacks them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

BLOCKED = ("grader.sandbox", "grader.sandbox.confine", "ctypes", "resource", "fcntl", "termios")
# None in sys.modules: `import X` raises ImportError, as where X does not exist.
BLOCK = f"import sys\nfor _name in {BLOCKED!r}:\n    sys.modules[_name] = None\n"

# The student's modules, and the grader's that have nothing to do with running a submission.
PORTABLE = (
    "grader.cli",
    "grader.reports.class_report",  # grader report
    "grader.reports.feedback",
    "grader.grading.selfcheck",  # grader check: the sandbox only once it runs
    "grader.grading.run",
    "grader.grading.pipeline",
    "grader.grading.expected",
    "grader.notebook",
    "grader.student.checks",
    "grader.student.cli",
    "grader.student.kernel",
)


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCK + code], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def test_the_portable_modules_import_without_the_sandbox() -> None:
    code = f"""
import importlib, json
for name in {PORTABLE!r}:
    importlib.import_module(name)
print(json.dumps(sorted(m for m in ("torch", "nbclient") if m in sys.modules)))
"""
    r = python(code)
    assert r.returncode == 0, r.stderr[-3000:]
    # Importing is cheap: torch loads when a check runs, nbclient when a kernel starts.
    assert json.loads(r.stdout.splitlines()[-1]) == []


@pytest.mark.parametrize("module", ["grader.sandbox.local", "ctypes", "resource"])
def test_the_blocking_works(module: str) -> None:
    r = python(f"import {module}\n")
    assert r.returncode != 0 and "Error: " in r.stderr and module.split(".")[0] in r.stderr


def write_logs(grades: Path) -> None:
    """Two students' logs as grading writes them (make_log, logfile), without running anything."""
    from grader import logfile, spec
    from grader.execution import Execution, ProbeAnswer
    from grader.grading import expected as expected_mod
    from grader.grading.pipeline import make_log

    bundle = ROOT / "student_template" / "checks" / "rnn_and_grad"
    a = spec.load(bundle)
    expected, _ = expected_mod.load(bundle)
    failed = ProbeAnswer(False, error={"kind": "error", "ename": "ValueError", "evalue": "no",
                                       "traceback": ""})
    for student, wrong in (("alice", ()), ("bob", (a.checks[0].request_key,))):
        answers = {c.request_key: failed if c.request_key in wrong
                   else ProbeAnswer(True, expected[c.request_key]) for c in a.checks}
        log = make_log(a, student=student, notebook_name=a.notebook, notebook=None,
                       execution=Execution((), answers, {"sandbox": "on"}), expected=expected)
        logfile.write_in(grades, log)


def test_grader_report_imports_neither_the_sandbox_nor_torch(tmp_path: Path) -> None:
    grades = tmp_path / "grades"
    write_logs(grades)
    code = f"""
from grader.cli import main
main(["report", {str(grades)!r}, "--markdown"], standalone_mode=False)
print("torch loaded:", "torch" in sys.modules)
"""
    r = python(code)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert lines[-1] == "torch loaded: False"
    assert any("alice" in line for line in lines) and any("bob" in line for line in lines)


@pytest.mark.parametrize("command", [["check", "--help"], ["report", "--help"]])
def test_the_commands_start_without_the_sandbox(command: list[str]) -> None:
    r = python(f"from grader.cli import main\nmain({command!r}, standalone_mode=False)\n")
    assert r.returncode == 0, r.stderr[-3000:]


def test_grader_check_cli_starts_without_the_sandbox() -> None:
    r = python("from grader.student.cli import main\n"
               "try:\n    main(['--help'])\nexcept SystemExit as exc:\n    assert exc.code == 0\n")
    assert r.returncode == 0, r.stderr[-3000:]
