"""The feedback page: escaped, self-contained, and as a browser renders it (headless Chromium)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from html import unescape
from pathlib import Path
from typing import Any

import pytest

from grader import logfile
from grader.logfile import SubmissionLog
from grader.reports import feedback
from tests.conftest import EXAMPLES, ROOT, grader_cli

CHROMIUM = Path("/usr/bin/chromium")
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16
TITLES = {"1.A": "RNNLayer", "1.B": "RecurrentRegressionModel", "1.C": "loss_all and loss_last"}


def log_with(**changes: Any) -> dict[str, Any]:
    log: dict[str, Any] = {
        "assignment": "demo", "student": "alice", "notebook": "demo.ipynb", "score": 1.0,
        "max_score": 3.0, "questions": {"1.A": {"score": 1.0, "max_score": 3.0}},
        "checks": [
            {"name": "1A_ok", "question": "1.A", "score": 1.0, "max_score": 1.0, "passed": True,
             "visibility": "visible", "message": "passed", "hint": ""},
            {"name": "1A_bad", "question": "1.A", "score": 0.0, "max_score": 2.0, "passed": False,
             "visibility": "visible", "message": "x: got 1, expected 2", "hint": "add one"}],
        "errors": [], "cells": [], "versions": {"grader": "0.1.0", "torch": "2.13.0"},
    }
    log.update(changes)
    return log


def test_everything_from_student_code_is_escaped(tmp_path: Path) -> None:
    evil = '<script>alert(1)</script><img src=x onerror=alert(2)>"&'
    log = log_with(student=evil, errors=[{"kind": "cell_error", "message": f"cell 2 raised {evil}"}])
    log["checks"][1]["message"] = evil
    log["checks"][1]["hint"] = evil
    page = feedback.render_page(SubmissionLog.from_dict(log), tmp_path)
    assert "<script" not in page and "<img src=x" not in page and "onerror=alert(2)>" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 5  # title, h1, error, message, hint
    assert "<script" not in page.lower() and "http" not in page  # no scripts, nothing external


def test_page_lists_checks_hint_and_failed_links(tmp_path: Path) -> None:
    page = feedback.render_page(SubmissionLog.from_dict(log_with()), tmp_path, titles={"1.A": "RNNLayer"})
    assert "<h1>demo: feedback for alice</h1>" in page
    assert '<strong>1 / 3</strong>' in page
    assert '<span>1.A RNNLayer</span><span>1 / 3</span>' in page
    assert '<p id="failed">1 of 2 checks failed: <a href="#check-1A_bad">1A_bad</a>.</p>' in page
    assert "<pre>x: got 1, expected 2</pre>" in page
    assert '<p class="hint"><b>Hint:</b> add one</p>' in page
    assert "Your notebook drew no plots" in page


def test_only_the_graders_own_png_figures_are_inlined(tmp_path: Path) -> None:
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "cell-03-1.png").write_bytes(PNG)
    (tmp_path / "figures" / "cell-04-1.png").write_bytes(b"GIF89a not a png")
    (tmp_path / "secret.png").write_bytes(PNG)
    (tmp_path / "figures" / "cell-05-1.png").symlink_to(tmp_path / "secret.png")
    cells = [{"cell": 3, "figures": ["figures/cell-03-1.png", "../secret.png"]},
             {"cell": 4, "figures": ["figures/cell-04-1.png", "figures/cell-09-9.png"]},
             {"cell": 5, "figures": ["figures/cell-05-1.png", "/etc/passwd"]}]
    found = feedback.figures(log_with(cells=cells), tmp_path)
    assert found == [(3, "figures/cell-03-1.png", PNG)]
    page = feedback.render_page(SubmissionLog.from_dict(log_with(cells=cells)), tmp_path)
    assert page.count("data:image/png;base64,") == 1
    assert f'src="data:image/png;base64,{base64.b64encode(PNG).decode()}"' in page


def test_markdown_summary_is_table_safe() -> None:
    log = log_with(errors=[{"kind": "cell_error", "message": "raised | ![x](http://e/x) <b>`"}])
    text = feedback.markdown_summary(SubmissionLog.from_dict(log), visible_only=True)
    assert text.splitlines()[:5] == [
        "### demo: 1 / 3 points (visible checks only)", "",
        "| question | check | result | points |", "|---|---|---|---|",
        "| 1.A | 1A_ok | PASS | 1 / 1 |"]
    assert r"- raised \| !\[x\](http://e/x) &lt;b&gt;\`" in text
    assert feedback.md("x" * 300).endswith("…") and len(feedback.md("x" * 300)) == 200


# -- a real page in a real browser ------------------------------------------------------------

def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args],
        capture_output=True, text=True, timeout=120)


def console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]


needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="/usr/bin/chromium is missing (apt-get install -y chromium; .ci/run installs it)")


@pytest.fixture(scope="module")
def correct_page(graded_examples: dict[str, Any]) -> Path:
    log_dir = graded_examples["out"] / "full_marks_alt_layout"
    log = logfile.read(log_dir / "submission_log.json")
    assert log is not None
    return feedback.write_page(log, log_dir, titles=TITLES)


@pytest.mark.slow
@needs_chromium
def test_browser_shows_checks_score_and_the_gradient_plot(correct_page: Path, tmp_path: Path) -> None:
    r = chromium("--dump-dom", correct_page.as_uri(), profile=tmp_path / "profile")
    assert r.returncode == 0, r.stderr
    assert console_errors(r.stderr) == []
    dom = r.stdout
    assert '<strong>30 / 30</strong>' in dom
    assert '<p id="failed">Every check passed.</p>' in dom
    for name in ("1A_parameter_count", "1A_forward_tanh", "1B_forward", "1C_loss_all", "1C_loss_last_other_shape"):
        assert f'<code>{name}</code>' in dom
    assert dom.count('<span class="badge pass">PASS</span>') == 14
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)" alt="([^"]+)">', dom)
    assert [alt for _, alt in images] == ["plot 1 of 2, from code cell 8", "plot 2 of 2, from code cell 9"]
    gradient_plot = base64.b64decode(images[-1][0])  # 1.D, the gradient visualiser, comes last
    assert gradient_plot.startswith(b"\x89PNG\r\n\x1a\n")
    assert gradient_plot == (correct_page.parent / "figures" / "cell-09-1.png").read_bytes()
    assert "<figcaption>code cell 9 (cell-09-1.png)</figcaption>" in unescape(dom)


@pytest.mark.slow
@needs_chromium
def test_browser_screenshot_of_a_failing_submission(graded_examples: dict[str, Any], tmp_path: Path) -> None:
    log_dir = graded_examples["out"] / "raises_in_1b"
    log = logfile.read(log_dir / "submission_log.json")
    assert log is not None
    page = feedback.write_page(log, log_dir, titles=TITLES)
    shot = tmp_path / "page.png"
    r = chromium("--hide-scrollbars", "--window-size=1000,2200", f"--screenshot={shot}", page.as_uri(),
                 profile=tmp_path / "profile")
    assert r.returncode == 0, r.stderr
    assert console_errors(r.stderr) == []
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and shot.stat().st_size > 20_000
    dom = chromium("--dump-dom", page.as_uri(), profile=tmp_path / "profile").stdout
    assert "<strong>21 / 30</strong>" in dom
    assert "<li>code cell 5 (`# Self-test for 1.B (…`) raised RuntimeError: mat1 and mat2 shapes cannot be multiplied (2x9 and 3x4)</li>" in dom
    assert "Hint:</b> Apply the head to every hidden state" in dom


@pytest.mark.slow
def test_check_out_writes_log_plots_and_page_for_any_notebook_name(tmp_path: Path) -> None:
    repo = tmp_path / "my-homework"
    shutil.copytree(ROOT / "student_template", repo)
    (repo / "rnn_and_grad.ipynb").unlink()
    shutil.copyfile(EXAMPLES / "fails_1c_sum_not_mean" / "rnn_and_grad.ipynb", repo / "rnn_and_grad (copy).ipynb")
    summary = tmp_path / "summary.md"
    r = grader_cli("check", str(repo / "rnn_and_grad (copy).ipynb"), "--checks", str(repo / "checks" / "rnn_and_grad"),
                   "--out", str(tmp_path / "out"), "--summary", str(summary), cwd=tmp_path,
                   env={"GRADER_ROOT": ""})
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "rnn_and_grad: 9 / 15 points (visible checks only)"
    log = json.loads((tmp_path / "out" / "submission_log.json").read_text())
    assert (log["student"], log["score"], log["max_score"]) == ("my-homework", 9.0, 15.0)
    assert sorted(p.name for p in (tmp_path / "out" / "figures").iterdir()) == ["cell-08-1.png", "cell-09-1.png"]
    page = (tmp_path / "out" / "feedback.html").read_text()
    assert "Visible checks only." in page and page.count("data:image/png;base64,") == 2
    assert summary.read_text().splitlines()[0] == "### rnn_and_grad: 9 / 15 points (visible checks only)"
    assert "| 1.C | 1C_loss_all | FAIL | 0 / 3 |" in summary.read_text()
    assert not list(repo.glob("rnn_and_grad.ipynb"))  # the student's folder is left as it was


@needs_chromium
def test_console_error_detection_is_not_vacuous(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>throw new Error('boom')</script></body></html>")
    r = chromium("--dump-dom", page.as_uri(), profile=tmp_path / "profile")
    assert any("Uncaught Error: boom" in line for line in console_errors(r.stderr)), r.stderr
