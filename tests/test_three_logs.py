"""One log for the same code, whichever way a student checks it.

The same notebooks go through the three ways a student can check their work, with the same
checks bundle (what ``grader bundle --visible-only`` and the template ship):

    sandboxed   ``grader check NOTEBOOK --out DIR``: the grader's sandbox (the CLI)
    kernel      ``grader-check NOTEBOOK --out DIR``: a fresh Jupyter kernel (the CLI)
    live        ``checks.check_all()`` in a cell after the notebook's own, in a real kernel

and their logs are compared field by field. A field may differ only if it is listed in
``DIFFERS`` (all three) or ``LIVE_DIFFERS`` (the in-notebook check), each with the reason.

Assignments: the course's ``rnn_and_grad``, and a copy of it in a temporary course whose visible
check ``1B_forward`` is ``optional: true`` (extra credit, outside ``max_score``): the course's
own optional checks are hidden and in the last-name assignment, which trains for minutes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml

from grader import logfile
from grader.logfile import NO_SANDBOX, SubmissionLog
from tests.conftest import EXAMPLES, NESTED_ROOT_OFF, ROOT, grader_cli

pytestmark = pytest.mark.slow

NOTEBOOK = "rnn_and_grad.ipynb"
OPTIONAL = "rnn_and_grad_optional"
OPTIONAL_CHECK = "1B_forward"
CASES = [
    ("rnn_and_grad", "full_marks_alt_layout"),  # the reference's equal, laid out otherwise
    ("rnn_and_grad", "fails_1b_wrong_head"),  # a bug: 1.B's values are wrong
    ("rnn_and_grad", "untouched_stub"),  # nothing done: every check says "not implemented"
    ("rnn_and_grad", "raises_in_1b"),  # a traceback in a message: cells named alike
    (OPTIONAL, "full_marks_alt_layout"),  # the optional check passed: above max_score
    (OPTIONAL, "fails_1b_wrong_head"),  # the optional check failed: max_score unchanged
]

# Fields of the log that legitimately differ between the three, and why. Everything else is
# compared, and must be equal.
DIFFERS = {
    "timings": "how long each run took: different runs, different processes",
    "sandbox": "grader check runs in the sandbox (its protections); grader-check and the "
               "in-notebook check run in the student's own kernel (logfile.NO_SANDBOX)",
    "cache_key": "grader run may reuse a log of the sandbox only; a kernel's log has no key",
}
# Fields where the in-notebook check differs from the two that run the notebook file.
LIVE_DIFFERS = {
    "cells": "the in-notebook check runs no cell: the student ran them, in any order, and only "
             "what they defined is checked (the Execution has answers and no cells)",
    "errors": "a log's errors come from its cells' outcomes, which the in-notebook check has not",
    "notebook_sha256": "no file is read: the kernel's live state is checked, not what is saved",
}
# Within a check of the in-notebook check's log.
LIVE_CHECK_DIFFERS = {
    "message": "where a probe raised inside the student's code, the traceback names the "
               "student's frames by their place in the file (`code cell N, line L`), which "
               "grader check and grader-check know (both run the file, cell by cell); in a live "
               "kernel the cells are whatever the student ran, in any order, so those frames are "
               "left out (the library frame and the error stay). Compared without them.",
}
# Within ``cells``, between the sandbox and the kernel.
CELL_DIFFERS = {
    "seconds": "timings, as above",
    "stdout": "the sandbox has no front end, so a rich display (the notebook's widget) is "
              "printed as text there; a kernel sends it to the front end as a display",
}
CHECK_FIELDS = ("name", "question", "visibility", "score", "max_score", "passed", "message",
                "hint", "optional")
LIVE_MIME = "application/x-test-submission-log+json"


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Visible-checks bundles made by `grader bundle`: the course's, and the optional copy's."""
    base = tmp_path_factory.mktemp("bundles")
    course = base / "course"
    source = ROOT / "assignments" / "rnn_and_grad"
    shutil.copytree(source, course / "assignments" / OPTIONAL,
                    ignore=shutil.ignore_patterns("__pycache__"))
    raw = yaml.safe_load((source / "assignment.yaml").read_text())
    raw["assignment"] = OPTIONAL
    [check] = [c for c in raw["checks"] if c["name"] == OPTIONAL_CHECK]
    assert check["visibility"] == "visible"
    check["optional"] = True
    (course / "assignments" / OPTIONAL / "assignment.yaml").write_text(
        yaml.safe_dump(raw, sort_keys=False))
    (course / "reference").mkdir()
    shutil.copyfile(ROOT / "reference" / NOTEBOOK, course / "reference" / NOTEBOOK)
    out = {}
    for name, root in (("rnn_and_grad", ROOT), (OPTIONAL, course)):
        out[name] = base / name
        r = grader_cli("bundle", name, "--visible-only", "--out", str(out[name]),
                       "--root", str(root))
        assert r.returncode == 0, r.stderr[-3000:]
    return out


def sandboxed_log(notebook: Path, bundle: Path, out: Path) -> SubmissionLog:
    r = grader_cli("check", str(notebook), "--checks", str(bundle), "--out", str(out),
                   cwd=notebook.parent)
    assert r.returncode == 0, r.stderr[-3000:]
    return read(out)


def kernel_log(notebook: Path, bundle: Path, out: Path) -> SubmissionLog:
    r = subprocess.run([sys.executable, "-m", "grader.student.cli", str(notebook), "--checks",
                        str(bundle), "--out", str(out)], cwd=notebook.parent,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return read(out)


def live_log(notebook: Path, bundle: Path) -> SubmissionLog:
    """The notebook's cells, then a check_all() cell, in a fresh kernel started in its folder;
    the report's log comes back as a display."""
    from nbclient import NotebookClient

    nb = nbformat.read(str(notebook), as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(
        "from IPython.display import display\n"
        "from grader import notebook as checks\n"
        f"_report = checks.check_all(checks_dir={str(bundle)!r}, quiet=True)\n"
        f"display({{{LIVE_MIME!r}: _report.log.to_json()}}, raw=True)\n"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(notebook.parent)}}).execute(env=env)
    outputs = nb.cells[-1].outputs
    shown = [o for o in outputs if LIVE_MIME in o.get("data", {})]
    assert len(shown) == 1, outputs
    return SubmissionLog.from_dict(json.loads(shown[0]["data"][LIVE_MIME]))


def without_cell_frames(message: str) -> str:
    """``message`` without the traceback frames of the student's cells (and their source)."""
    kept: list[str] = []
    frame = re.compile(r"  code cell \d+, line \d+, in ")
    lines = message.splitlines()
    i = 0
    while i < len(lines):
        if frame.match(lines[i]):
            i += 2 if i + 1 < len(lines) and lines[i + 1].startswith("    ") else 1
            continue
        kept.append(lines[i])
        i += 1
    return "\n".join(kept)


def without(cells: list[dict[str, Any]], fields: dict[str, str]) -> list[dict[str, Any]]:
    return [{k: v for k, v in c.items() if k not in fields} for c in cells]


def read(out: Path) -> SubmissionLog:
    log = logfile.read(out / logfile.LOG_NAME)
    assert log is not None, f"no readable log in {out}"
    return log


@pytest.fixture(scope="module")
def logs(bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
         ) -> dict[tuple[str, str], dict[str, SubmissionLog]]:
    """(assignment, student) -> way -> log; each notebook is graded in a copy of its folder."""
    results = {}
    for assignment, student in CASES:
        work = tmp_path_factory.mktemp(f"{assignment}-{student}")
        folder = work / student  # the folder's name is the student's, in every log
        shutil.copytree(EXAMPLES / student, folder)
        notebook = folder / NOTEBOOK
        bundle = bundles[assignment]
        results[(assignment, student)] = {
            "sandboxed": sandboxed_log(notebook, bundle, work / "sandboxed"),
            "kernel": kernel_log(notebook, bundle, work / "kernel"),
            "live": live_log(notebook, bundle),
        }
    return results


@pytest.mark.parametrize("assignment, student", CASES)
def test_the_three_logs_agree(logs: dict[tuple[str, str], dict[str, SubmissionLog]],
                              assignment: str, student: str) -> None:
    three = logs[(assignment, student)]
    sandboxed, kernel, live = (three[w].as_dict() for w in ("sandboxed", "kernel", "live"))
    for way, log in (("kernel", kernel), ("live", live)):
        assert set(log) == set(sandboxed), way
        skipped = set(DIFFERS) | (set(LIVE_DIFFERS) if way == "live" else set())
        for key in sorted(set(sandboxed) - skipped):
            if key == "checks":
                continue  # below, check by check and field by field
            if key == "cells":
                assert without(log[key], CELL_DIFFERS) == without(sandboxed[key], CELL_DIFFERS)
                continue
            assert log[key] == sandboxed[key], f"{way}: {key}"
        assert len(log["checks"]) == len(sandboxed["checks"]), way
        for got, want in zip(log["checks"], sandboxed["checks"]):
            assert set(got) == set(want) == set(CHECK_FIELDS), way
            for name in CHECK_FIELDS:
                wanted = want[name]
                if way == "live" and name in LIVE_CHECK_DIFFERS:
                    wanted = without_cell_frames(wanted)
                assert got[name] == wanted, f"{way}: check {want['name']}: {name}"
    # What was said above, in detail.
    assert live["assignment"] == assignment and live["student"] == student
    assert live["notebook"] == NOTEBOOK
    for key in ("score", "max_score", "questions"):
        assert sandboxed[key] == kernel[key] == live[key], key


@pytest.mark.parametrize("assignment, student", CASES)
def test_the_fields_that_differ_differ_as_said(
        logs: dict[tuple[str, str], dict[str, SubmissionLog]], assignment: str,
        student: str) -> None:
    three = logs[(assignment, student)]
    sandboxed, kernel, live = (three[w] for w in ("sandboxed", "kernel", "live"))
    assert sandboxed.protections_off == NESTED_ROOT_OFF and sandboxed.cache_key
    for log in (kernel, live):
        assert log.protections == NO_SANDBOX and log.cache_key == ""
    assert live.cells == () and live.errors == () and live.notebook_sha256 is None
    assert sandboxed.notebook_sha256 == kernel.notebook_sha256 is not None
    assert sandboxed.errors == kernel.errors
    assert [c["cell"] for c in kernel.cells] == [c["cell"] for c in sandboxed.cells]


def test_the_optional_check_is_extra_credit(
        logs: dict[tuple[str, str], dict[str, SubmissionLog]]) -> None:
    """The variant exercises ``optional``: passed it is above max_score, failed it costs none."""
    full = logs[(OPTIONAL, "full_marks_alt_layout")]["live"]
    buggy = logs[(OPTIONAL, "fails_1b_wrong_head")]["live"]
    [passed] = [c for c in full.checks if c.name == OPTIONAL_CHECK]
    [failed] = [c for c in buggy.checks if c.name == OPTIONAL_CHECK]
    assert passed.optional and passed.passed and failed.optional and not failed.passed
    assert full.score == full.max_score + passed.max_score
    assert buggy.max_score == full.max_score
    course = logs[("rnn_and_grad", "full_marks_alt_layout")]["live"]
    assert full.max_score == course.max_score - passed.max_score
