"""The bundled example submissions, graded for real: exact scores and the explanations."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from tests.conftest import NESTED_ROOT_OFF

EXPECTED = {  # student: (total, {question: score})
    "full_marks_alt_layout": (30.0, {"1.A": 10.0, "1.B": 10.0, "1.C": 10.0}),
    "fails_1a_no_recurrence": (21.0, {"1.A": 1.0, "1.B": 10.0, "1.C": 10.0}),
    "fails_1b_wrong_head": (23.0, {"1.A": 10.0, "1.B": 3.0, "1.C": 10.0}),
    "fails_1c_sum_not_mean": (20.0, {"1.A": 10.0, "1.B": 10.0, "1.C": 0.0}),
    "untouched_stub": (0.0, {"1.A": 0.0, "1.B": 0.0, "1.C": 0.0}),
    "raises_in_1b": (21.0, {"1.A": 10.0, "1.B": 1.0, "1.C": 10.0}),
    "hangs_in_1c": (20.0, {"1.A": 10.0, "1.B": 10.0, "1.C": 0.0}),
    "cheats_visible_values": (21.0, {"1.A": 1.0, "1.B": 10.0, "1.C": 10.0}),
}


def test_every_example_gets_its_exact_score(graded_examples: dict[str, Any]) -> None:
    logs = graded_examples["logs"]
    assert set(logs) == set(EXPECTED)
    for student, (total, per_question) in EXPECTED.items():
        log = logs[student]
        got = {q: v["score"] for q, v in log["questions"].items() if q in per_question}
        assert (log["score"], got) == (total, per_question), student
        assert log["max_score"] == 30.0


def test_stub_says_not_implemented_without_a_traceback(graded_examples: dict[str, Any]) -> None:
    checks = graded_examples["logs"]["untouched_stub"]["checks"]
    visible = [c for c in checks if c["visibility"] == "visible"]
    assert {c["name"]: c["message"] for c in visible} == {
        "1A_parameter_count": "not implemented: your code still raises NotImplementedError (1.A init)",
        "1A_forward_tanh": "not implemented: your code still raises NotImplementedError (1.A init)",
        "1B_parameter_count": "not implemented: your code still raises NotImplementedError (1.B init)",
        "1B_forward": "not implemented: your code still raises NotImplementedError (1.B init)",
        "1C_loss_all": "not implemented: your code still raises NotImplementedError (1.C loss)",
        "1C_loss_last": "not implemented: your code still raises NotImplementedError (1.C loss)",
    }
    assert all("Traceback" not in c["message"] for c in checks)


def test_hidden_checks_show_only_name_and_score(graded_examples: dict[str, Any]) -> None:
    for log in graded_examples["logs"].values():
        for c in log["checks"]:
            if c["visibility"] == "hidden":
                assert c["message"] in ("passed", "failed (hidden check: details are not shown)")
                assert c["hint"] == ""


def test_failure_explains_where_and_by_how_much(graded_examples: dict[str, Any]) -> None:
    checks = {c["name"]: c for c in graded_examples["logs"]["fails_1a_no_recurrence"]["checks"]}
    message = checks["1A_forward_tanh"]["message"]
    lines = message.splitlines()
    assert lines[0].startswith("all_h: ") and "differ beyond tolerance (|got - expected| <= 1e-06 + 1e-05 * |expected|)." in lines[0]
    assert lines[1].startswith("Max absolute difference: ")
    assert lines[2].startswith("Max relative difference: ")
    assert lines[3].split() == ["index", "|", "got", "|", "expected"]
    assert checks["1A_forward_tanh"]["hint"].startswith("h_0 is zeros")


def test_hang_keeps_points_and_log_says_why(graded_examples: dict[str, Any]) -> None:
    log = graded_examples["logs"]["hangs_in_1c"]
    kinds = {e["kind"] for e in log["errors"]}
    assert "cell_timeout" in kinds
    loss = {c["name"]: c["message"] for c in log["checks"]}["1C_loss_all"]
    assert loss == "did not finish: time limit exceeded"


def test_raise_in_1b_is_reported_with_its_cell(graded_examples: dict[str, Any]) -> None:
    log = graded_examples["logs"]["raises_in_1b"]
    first = log["errors"][0]
    assert first["kind"] == "cell_error"
    # Named as a student finds it: among code cells only, with the cell's first line.
    assert first["cell"] == 5
    assert first["message"] == ("code cell 5 (`# Self-test for 1.B (…`) raised RuntimeError: "
                                "mat1 and mat2 shapes cannot be multiplied (2x9 and 3x4)")
    forward = {c["name"]: c["message"] for c in log["checks"]}["1B_forward"]
    # The student's frame and the library frame that raised; no path of the grading machine.
    assert forward == (
        "RecurrentRegressionModel.forward(x: (2, 4, 2)) raised RuntimeError: mat1 and mat2 "
        "shapes cannot be multiplied (2x12 and 3x4)\n"
        "Traceback (most recent call last):\n"
        "  code cell 4, line 11, in forward\n"
        "    out = self.readout(all_h.reshape(all_h.shape[0], -1))\n"
        "  torch/nn/modules/linear.py, line 134, in forward\n"
        "    return F.linear(input, self.weight, self.bias)\n"
        "RuntimeError: mat1 and mat2 shapes cannot be multiplied (2x12 and 3x4)")


def test_log_schema(graded_examples: dict[str, Any]) -> None:
    path = Path(graded_examples["out"]) / "full_marks_alt_layout" / "submission_log.json"
    log = json.loads(path.read_text())
    for key in ("schema_version", "assignment", "student", "score", "max_score", "checks",
                "errors", "notebook_sha256", "timings", "versions"):
        assert key in log, key
    assert log["assignment"] == "rnn_and_grad" and log["student"] == "full_marks_alt_layout"
    assert set(log["versions"]) == {"python", "torch", "numpy", "grader"}
    assert log["versions"]["torch"].startswith("2.13.0")
    for c in log["checks"]:
        assert set(c) >= {"name", "question", "score", "max_score", "passed", "visibility", "message"}
    assert len(log["notebook_sha256"]) == 64
    assert log["sandbox"]["off"] == NESTED_ROOT_OFF


def test_summary_csv_has_one_row_per_student(graded_examples: dict[str, Any]) -> None:
    rows = list(csv.DictReader((Path(graded_examples["out"]) / "summary.csv").open()))
    assert [r["student"] for r in rows] == sorted(EXPECTED)
    for r in rows:
        assert float(r["score"]) == EXPECTED[r["student"]][0]


def test_1d_plot_is_captured_for_a_correct_submission(graded_examples: dict[str, Any]) -> None:
    log = graded_examples["logs"]["full_marks_alt_layout"]
    figures = [f for c in log["cells"] for f in c["figures"]]
    assert figures, "the notebook's plots should be captured"
    png = (Path(graded_examples["out"]) / "full_marks_alt_layout" / figures[-1]).read_bytes()
    assert png.startswith(b"\x89PNG")
