"""In-notebook checks (grader.notebook): the student's own kernel, the grader's probes and scoring.

Fast tests run a notebook's code cells in this process and check its namespace; the slow ones
start real Jupyter kernels (nbclient) and compare `grader-check` with `grader check` on every
example (tests/test_three_logs.py compares the three ways field by field).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
import torch

from grader import notebook as checks
from grader.errors import InputError
from grader.student.checks import load_bundle, run_checks
from tests.conftest import EXAMPLES, ROOT

TEMPLATE = ROOT / "student_template"
BUNDLES = TEMPLATE / "checks"
RNN_BUNDLE = BUNDLES / "rnn_and_grad"
CORRECT = EXAMPLES / "full_marks_alt_layout" / "rnn_and_grad.ipynb"
BUG_1A = EXAMPLES / "fails_1a_no_recurrence" / "rnn_and_grad.ipynb"
STUB = TEMPLATE / "rnn_and_grad.ipynb"
VISIBLE = ["1A_parameter_count", "1A_forward_tanh", "1B_parameter_count", "1B_forward",
           "1C_loss_all", "1C_loss_last"]


def namespace(notebook: Path) -> dict[str, Any]:
    """The notebook's code cells run here, as a kernel would (magics dropped, errors kept)."""
    import matplotlib

    matplotlib.use("Agg")
    ns: dict[str, Any] = {"__name__": "__main__"}
    for cell in nbformat.read(str(notebook), as_version=4).cells:
        if cell.cell_type != "code":
            continue
        source = "\n".join(line for line in cell.source.splitlines()
                           if not line.lstrip().startswith(("%", "!")))
        try:
            exec(compile(source, "<cell>", "exec"), ns)
        except Exception:
            pass  # an unfinished template raises NotImplementedError: the checks say so
    return ns


@pytest.fixture(scope="module")
def correct_ns() -> dict[str, Any]:
    return namespace(CORRECT)


def test_correct_code_passes_every_visible_check_fast(correct_ns: dict[str, Any]) -> None:
    checks.check_all(ns=correct_ns, checks_dir=RNN_BUNDLE, quiet=True)  # warm: torch's first call
    started = time.perf_counter()
    report = checks.check_all(ns=correct_ns, checks_dir=RNN_BUNDLE, quiet=True)
    elapsed = time.perf_counter() - started
    assert [r.name for r in report.results] == VISIBLE
    assert report.passed and report.score == report.max_score == 15.0
    assert elapsed < 1.0, f"1.A-1.C took {elapsed:.2f} s"


def test_one_question_with_a_bug_explains_it(capsys: pytest.CaptureFixture[str]) -> None:
    ns = namespace(BUG_1A)
    capsys.readouterr()  # what the notebook's own cells printed
    report = checks.check("1.A", ns=ns, checks_dir=RNN_BUNDLE)
    assert [(r.name, r.passed, r.score) for r in report.results] == [
        ("1A_parameter_count", True, 1.0), ("1A_forward_tanh", False, 0.0)]
    out = capsys.readouterr().out.splitlines()
    # Outside a kernel it prints the text of `grader check`: score line, PASS/FAIL, table, hint.
    assert out[0] == "rnn_and_grad 1.A: 1 / 4 points (visible checks only)"
    assert out[1] == "PASS 1.A 1A_parameter_count (1/1)"
    assert out[2] == "FAIL 1.A 1A_forward_tanh (0/3)"
    assert out[3] == ("     all_h: 18 of 24 elements differ beyond tolerance "
                      "(|got - expected| <= 1e-06 + 1e-05 * |expected|).")
    assert "       index     | got        | expected" in out
    assert out[-4] == ("     Hint: h_0 is zeros; h_t = nonlinearity(W_x x_t + W_h h_(t-1) + b); "
                       "all_h stacks h_1..h_T on dim 1.")
    # A few lines that re-run the failed check in a cell, its error a real traceback.
    assert out[-3:] == ["     Reproduce it in a cell:",
                        "         got = checks.reproduce('1A_forward_tanh')  # the inputs: "
                        "checks.inputs('1A_forward_tanh')",
                        "         want = checks.expected('1A_forward_tanh')"]
    got = checks.reproduce("1A_forward_tanh", ns=ns, checks_dir=RNN_BUNDLE)
    assert got["all_h"].shape == (2, 4, 3)
    html = report.html()
    assert "<b style=\"color:#cf222e\">FAIL</b>" in html and "index     | got" in html


def test_untouched_template_says_not_implemented() -> None:
    report = checks.check_all(ns=namespace(STUB), checks_dir=RNN_BUNDLE, quiet=True)
    assert report.score == 0.0 and report.max_score == 15.0
    assert report.results[0].message == ("not implemented: your code still raises "
                                         "NotImplementedError (1.A init)")
    assert report.results[-1].message == ("not implemented: your code still raises "
                                          "NotImplementedError (1.C loss)")


def test_nothing_defined_names_what_is_missing() -> None:
    report = checks.check("1.B", ns={}, checks_dir=RNN_BUNDLE, quiet=True)
    assert [r.message for r in report.results] == ["RecurrentRegressionModel is not defined"] * 2


def test_the_assignment_is_found_from_the_question_or_the_definitions(
        correct_ns: dict[str, Any]) -> None:
    # Both bundles are there (the template's checks/); 1.A exists only in rnn_and_grad.
    assert checks.check("1.A", ns=correct_ns, checks_dir=BUNDLES, quiet=True).assignment == "rnn_and_grad"
    assert checks.check("2.A", ns={}, checks_dir=BUNDLES, quiet=True).assignment == "rnn_last_name"
    assert checks.check_all(ns=correct_ns, checks_dir=BUNDLES, quiet=True).assignment == "rnn_and_grad"
    with pytest.raises(InputError, match="several assignments could be meant"):
        checks.check_all(ns={}, checks_dir=BUNDLES, quiet=True)
    with pytest.raises(InputError, match="no assignment has a question '9.Z'"):
        checks.check("9.Z", ns={}, checks_dir=BUNDLES, quiet=True)
    with pytest.raises(InputError, match="rnn_and_grad has no question '2.A'"):
        checks.check("2.A", ns={}, checks_dir=BUNDLES, assignment="rnn_and_grad", quiet=True)


def test_the_notebook_metadata_names_the_assignment(tmp_path: Path, correct_ns: dict[str, Any],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    nb = json.loads(STUB.read_text())
    nb["metadata"]["grader"] = {"assignment": "rnn_last_name"}
    (tmp_path / "homework.ipynb").write_text(json.dumps(nb))
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "homework.ipynb"))
    # Definitions say rnn_and_grad; the notebook that runs says otherwise, and wins.
    assert checks.check_all(ns=correct_ns, checks_dir=BUNDLES, quiet=True).assignment == "rnn_last_name"


def test_checks_leave_the_students_random_stream_alone(correct_ns: dict[str, Any]) -> None:
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    checks.check_all(ns=correct_ns, checks_dir=RNN_BUNDLE, quiet=True)
    assert torch.equal(torch.rand(3), expected)


def test_a_probe_that_hangs_is_stopped_and_reported(correct_ns: dict[str, Any]) -> None:
    def loss_fn(*args: Any, **kwargs: Any) -> Any:
        while True:
            time.sleep(0.01)

    ns = {**correct_ns, "loss_fn": loss_fn}
    bundle = load_bundle(RNN_BUNDLE)
    started = time.perf_counter()
    report = run_checks(bundle, ns=ns, questions=["1.C"], probe_seconds=0.3)
    assert time.perf_counter() - started < 3
    assert [r.message for r in report.results] == ["did not finish: time limit exceeded"] * 2


def test_no_linux_only_module_is_imported() -> None:
    """What Windows lacks (resource, fcntl, termios) and the sandbox (libc) are never imported."""
    code = f"""
import sys, importlib.abc
BLOCKED = {{"resource", "fcntl", "termios", "grader.sandbox", "grader.sandbox.local",
           "grader.sandbox.worker", "grader.sandbox.confine", "grader.grading.run",
           "grader.grading.selfcheck", "grader.cli"}}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in BLOCKED:
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
from grader import notebook as checks
r = checks.check("1.A", ns={{}}, checks_dir={str(RNN_BUNDLE)!r}, quiet=True)
import grader.reports.feedback, grader.student.cli, grader.student.kernel  # grader-check's
print(r.score, r.max_score, sorted(m for m in BLOCKED if m in sys.modules))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0.0 4.0 []"


# -- a real Jupyter kernel ---------------------------------------------------------------------

def run_with_check_cell(notebook: Path, tmp: Path, cell: str) -> list[dict[str, Any]]:
    """Execute ``notebook`` plus ``cell`` in a fresh python3 kernel; return that cell's outputs."""
    from nbclient import NotebookClient

    nb = nbformat.read(str(notebook), as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(cell))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    NotebookClient(nb, timeout=60, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(tmp)}}).execute(env=env)
    return [dict(o) for o in nb.cells[-1].outputs]


CHECK_CELL = (f"from grader import notebook as checks\n"
              f"checks.check('1.A', checks_dir={str(RNN_BUNDLE)!r})\n")


@pytest.mark.slow
@pytest.mark.parametrize("notebook, first_lines", [
    (CORRECT, ["rnn_and_grad 1.A: 4 / 4 points (visible checks only)",
               "PASS 1.A 1A_parameter_count (1/1)", "PASS 1.A 1A_forward_tanh (3/3)"]),
    (BUG_1A, ["rnn_and_grad 1.A: 1 / 4 points (visible checks only)",
              "PASS 1.A 1A_parameter_count (1/1)", "FAIL 1.A 1A_forward_tanh (0/3)"]),
    (STUB, ["rnn_and_grad 1.A: 0 / 4 points (visible checks only)",
            "FAIL 1.A 1A_parameter_count (0/1)",
            "     not implemented: your code still raises NotImplementedError (1.A init)"]),
], ids=["correct", "bug", "untouched"])
def test_check_cell_in_a_jupyter_kernel(notebook: Path, first_lines: list[str],
                                        tmp_path: Path) -> None:
    outputs = run_with_check_cell(notebook, tmp_path, CHECK_CELL)
    # Shown once (the CheckReport that ends the cell does not show itself again), HTML + text.
    shown = [o for o in outputs if o["output_type"] in ("display_data", "execute_result")
             and o.get("data")]
    assert len(shown) == 1, outputs
    data = shown[0]["data"]
    assert data["text/plain"].splitlines()[:3] == first_lines
    assert '<div class="grader-checks">' in data["text/html"]
    assert not [o for o in outputs if o["output_type"] == "error"]


def _compare_logs(cli: dict[str, Any], live: dict[str, Any]) -> None:
    def same(text: object) -> str:
        # A timeout's reason differs by design: the grader limits CPU time, a kernel wall time.
        return str(text).replace("its CPU time limit", "its time limit")

    def key(log: dict[str, Any]) -> list[tuple[str, bool, float, str]]:
        return [(c["name"], c["passed"], c["score"], same(c["message"])) for c in log["checks"]]

    def errors(log: dict[str, Any]) -> list[tuple[str, Any, str]]:
        return [(e["kind"], e.get("cell"), same(e["message"])) for e in log["errors"]]

    assert key(live) == key(cli)
    assert (live["score"], live["max_score"]) == (cli["score"], cli["max_score"])
    assert errors(live) == errors(cli)


@pytest.mark.slow
@pytest.mark.parametrize("student", sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir()))
def test_agrees_with_grader_check_on_every_example(student: str) -> None:
    from grader.grading.selfcheck import self_check
    from grader.student.cli import check_notebook

    notebook = EXAMPLES / student / "rnn_and_grad.ipynb"
    cli = self_check(notebook=notebook, checks_dir=RNN_BUNDLE, root=None)
    a = load_bundle(RNN_BUNDLE).assignment
    # The grader's own limits, so a hung cell or probe is cut where the grader cuts it.
    live = check_notebook(notebook=notebook, checks_dir=RNN_BUNDLE,
                          timeout=a.cell_seconds, probe_timeout=a.probe_seconds)
    _compare_logs(cli.as_dict(), live.as_dict())


@pytest.mark.slow
def test_grader_check_command_writes_log_page_and_summary(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    r = subprocess.run([sys.executable, "-m", "grader.student.cli", str(CORRECT), "--checks",
                        str(RNN_BUNDLE), "--out", str(tmp_path / "out"), "--summary", str(summary)],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "rnn_and_grad: 15 / 15 points (visible checks only)"
    log = json.loads((tmp_path / "out" / "submission_log.json").read_text())
    assert log["score"] == log["max_score"] == 15.0
    assert summary.read_text().startswith("### rnn_and_grad: 15 / 15 points (visible checks only)\n")
    page = (tmp_path / "out" / "feedback.html").read_text()
    assert page.count("data:image/png;base64,") == 2  # the student's two plots
    missing = subprocess.run([sys.executable, "-m", "grader.student.cli",
                              str(tmp_path / "nope.ipynb")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 3
    assert missing.stderr == f"grader-check: error: {tmp_path / 'nope.ipynb'}: no such notebook\n"
