"""Messages a student can act on, for notebooks shaped like the course's recent templates
(tests/scenarios/template_shapes/, made by make_template_shapes.py): comment-only TODO bodies
and models with no parameters read "not implemented yet" with no hint; an error inside the
student's function names the call and the shapes passed; an ungraded part says why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from grader import spec
from grader.grading.score import ungraded_reason
from tests.conftest import ROOT

SHAPES = ROOT / "tests" / "scenarios" / "template_shapes"


def _grade(assignment: str, tmp: Path, errors: dict[str, list[str]] | None = None
           ) -> dict[str, dict[str, Any]]:
    from grader.grading.run import GradingSession
    from grader.submission import student_dirs

    a = spec.find(ROOT, assignment)
    with GradingSession(root=ROOT, assignment=a, out_dir=tmp, jobs=2) as session:
        results = session.grade(student_dirs(SHAPES / assignment), jobs=2)
    if errors is not None:
        errors.update({r.log.student: [e["message"] for e in r.log.errors] for r in results})
    return {r.log.student: {c.name: c for c in r.log.checks} for r in results}


@pytest.mark.slow
def test_rnn_and_grad_template_shapes(tmp_path: Path) -> None:
    logs = _grade("rnn_and_grad", tmp_path)
    stub = logs["not_implemented_comment_only"]
    layer = "not implemented yet (1.A): RNNLayer(2, 3) has no parameters: its __init__ creates no layer yet"
    head = ("not implemented yet (1.B): RecurrentRegressionModel(net, 4) has no parameters: its "
            "__init__ creates no layer yet")
    loss = ("not implemented yet (1.C): loss_fn is not defined because a block in code cell 6 "
            "(`def generate_batch(…`) holds only comments (incomplete input at line 12); write "
            "your code below its TODO")
    for name, message in [("1A_parameter_count", layer), ("1A_forward_tanh", layer),
                          ("1B_parameter_count", head), ("1B_forward", head),
                          ("1C_loss_all", loss), ("1C_loss_last", loss)]:
        assert (stub[name].message, stub[name].hint, stub[name].score) == (message, "", 0), name
    assert sum(c.score for c in stub.values()) == 0
    bug = logs["fails_1c_unpacks_shape"]["1C_loss_all"]
    assert bug.message.splitlines()[0] == (
        "loss_fn(pred: (4, 6, 1), y: (4, 6, 1), last_timestep_only=False) raised ValueError: "
        "too many values to unpack (expected 2)")
    assert "  code cell 6, line 11, in loss_fn" in bug.message
    assert bug.hint  # a real bug keeps its hint
    assert logs["fails_1c_unpacks_shape"]["1A_forward_tanh"].passed


@pytest.mark.slow
def test_rnn_last_name_template_shapes(tmp_path: Path) -> None:
    errors: dict[str, list[str]] = {}
    logs = _grade("rnn_last_name", tmp_path, errors)
    stub = logs["not_implemented_comment_only"]
    assert stub["2A_letter_to_index"].message == (
        "not implemented yet (2.A): letterToIndex is not defined because a block in code cell 4 "
        "(`def letterToIndex(…`) holds only comments (incomplete input at line 3); write your "
        "code below its TODO")
    assert stub["2B_parameter_names_rnn"].message == (
        "not implemented yet (2.B): RecurrentClassifier is not defined because a block in code "
        "cell 8 (`class RecurrentClassifier(…`) holds only comments (expected an indented block "
        "after 'if' statement on line 9 at line 13); write your code below its TODO")
    assert {c.hint for c in stub.values() if c.visibility == "visible"} == {""}
    assert sum(c.score for c in stub.values()) == 0
    embedding = logs["not_implemented_embedding"]["2B_logits_rnn"]
    assert embedding.message == (
        "not implemented yet (2.B forward): the code still looks like the stub (AttributeError: "
        "'RecurrentClassifier' object has no attribute 'embedding')\n"
        "in RecurrentClassifier.forward(x: (4, 7), last_pos: (4,))")
    assert embedding.hint == ""
    assert logs["not_implemented_embedding"]["2A_letter_to_index"].passed
    # hidden_size left undefined: every visible check passes; the training cell's NameError
    # comes first among the notebook's errors, and the accuracy (hidden) scores nothing.
    undefined = logs["fails_2c_hidden_size_undefined"]
    assert all(c.passed for c in undefined.values() if c.name != "2C_heldout_accuracy")
    # The cascade's first cause first: the cell that should have made rnn_model.
    assert undefined["2C_heldout_accuracy"].message == (
        "model is not defined (code cell 12 (`seed = 1998`), which defines rnn_model, raised "
        "NameError: name 'hidden_size' is not defined; code cell 14 (`def classify_name(…`), which "
        "defines it, then raised NameError: name 'rnn_model' is not defined)")
    assert errors["fails_2c_hidden_size_undefined"][0] == (
        "code cell 12 (`seed = 1998`) raised NameError: name 'hidden_size' is not defined")


def test_ungraded_parts_say_why() -> None:
    a = spec.find(ROOT, "rnn_and_grad")
    assert ungraded_reason(a, "1.D") == "1.D has no checks: it is not graded and carries no points"
    assert ungraded_reason(a, "1.A") == ""
    last = spec.find(ROOT, "rnn_last_name")
    assert ungraded_reason(last, "2.C", visible_only=True) == (
        "2.C is graded by hidden checks only, run when your work is graded; there is nothing to "
        "check here")


# -- what reaches students holds nothing hidden -------------------------------------------------

def _student_artifacts() -> dict[str, bytes]:
    """Everything a student is given: each file of student_template/, each member of its wheel,
    and each file embedded in a notebook's metadata (as the notebook carries it)."""
    import json
    import zipfile

    template = ROOT / "student_template"
    out: dict[str, bytes] = {}
    for path in sorted(p for p in template.rglob("*") if p.is_file()):
        name = path.relative_to(template).as_posix()
        out[name] = path.read_bytes()
        if path.suffix == ".whl":
            with zipfile.ZipFile(path) as zf:
                out.update({f"{name}!{m}": zf.read(m) for m in zf.namelist()})
        if path.suffix == ".ipynb":
            embedded = json.loads(path.read_text())["metadata"]["grader"]["checks"]
            assert {"assignment.yaml", "probes.py", "expected.json"} <= set(embedded), name
            out.update({f"{name}#{k}": v.encode() for k, v in embedded.items()})
    return out


def _hidden_checks() -> list[tuple[spec.Assignment, spec.Check]]:
    return [(a, c) for a in spec.load_all(ROOT) for c in a.checks
            if not spec.shipped_to_students(c.visibility, c.kind)]


def _arrays(value: Any) -> list[Any]:
    import numpy as np

    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, dict):
        return [a for v in value.values() for a in _arrays(v)]
    if isinstance(value, (list, tuple)):
        return [a for v in value for a in _arrays(v)]
    return []


def test_nothing_given_to_students_names_or_holds_a_hidden_check() -> None:
    """No hidden check's name or request key (the hash of its inputs) in any file, no hidden
    input among the shipped values, every shipped expected value a visible check's, and no line
    of the reference's solutions."""
    import numpy as np

    from grader.grading import expected as expected_mod
    from tests.test_student_package import solution_lines

    artifacts = _student_artifacts()
    hidden = _hidden_checks()
    assert len(hidden) >= 10
    for a, c in hidden:
        for name, content in artifacts.items():
            assert c.name.encode() not in content, f"hidden check {c.name} in {name}"
            assert c.request_key.encode() not in content, f"hidden inputs of {c.name} in {name}"
    shipped_values = []
    for name, content in artifacts.items():
        if name.endswith("expected.json"):
            values = expected_mod.decode(content, source=Path(name))
            a = spec.find(ROOT, name.split("#")[0].split("/")[-1].removesuffix(".ipynb")
                          if "#" in name else name.split("/")[1])
            assert set(values) == {c.request_key for c in a.visible_only().checks}, name
            shipped_values += _arrays(values)
    assert shipped_values
    for a, c in hidden:  # a hidden input never ships, even as another check's value
        for x in _arrays(c.args):
            if x.size > 3:
                assert not any(v.shape == x.shape and np.array_equal(v, x) for v in shipped_values), c.name
    solution = solution_lines()
    assert solution
    for name, content in artifacts.items():
        if name.endswith((".py", ".json", ".yaml", ".ipynb")) or "#" in name:
            text = content.decode("utf-8", "replace")
            assert not [s for s in solution if s in text], name


@pytest.mark.slow
def test_no_hidden_expected_value_is_given_to_students() -> None:
    """The reference's outputs for rnn_and_grad's hidden checks, computed as the grader does,
    appear nowhere among the values students get (a 1-element value may coincide)."""
    import numpy as np

    from grader.grading import expected as expected_mod
    from grader.grading.plan import GradingPlan, limits_for, warm_up_for
    from grader.sandbox.local import Worker

    a = spec.find(ROOT, "rnn_and_grad")
    with Worker(limits=limits_for(a), **warm_up_for([a])) as worker:
        values = expected_mod.compute(plan=GradingPlan.build(a), executor=worker,
                                      reference=ROOT / "reference" / a.notebook)
    shipped = [v for name, content in _student_artifacts().items()
               if name.endswith("expected.json")
               for v in _arrays(expected_mod.decode(content, source=Path(name)))]
    hidden = [c for c in a.checks if c.visibility == "hidden"]
    found = [x for c in hidden for x in _arrays(values[c.request_key]) if x.size > 1]
    assert len(found) >= len(hidden)
    for x in found:
        assert not any(v.shape == x.shape and np.allclose(v, x) for v in shipped)


# -- the generated cells, the attempts log --------------------------------------------------------

def test_a_rebuild_replaces_the_generated_cells_in_place() -> None:
    """`grader build` over a template (or a student's copy) finds its cells by their marker:
    the same notebook again, one setup cell first, one check cell per question with visible
    checks, one submit cell last; stripping them gives the plain template back."""
    import json

    from grader.publish import check_cells, student_package
    from grader.publish.template import notebook_text, read_notebook

    path = ROOT / "student_template" / "rnn_and_grad.ipynb"
    nb = read_notebook(path)
    a = spec.find(ROOT, "rnn_and_grad")
    bundle = {k: v.encode() for k, v in nb.metadata["grader"]["checks"].items()}
    again = check_cells.add(nb, assignment=a, bundle=bundle, wheel=student_package.wheel_name(),
                            requirement=student_package.requirement())
    assert notebook_text(again) == path.read_text()
    kinds = [(c.metadata.get("grader", {}).get("cell"), c.metadata.get("grader", {}).get("question"))
             for c in again.cells if c.metadata.get("grader", {}).get("cell")]
    assert kinds == [("setup", None), ("check", "1.A"), ("check", "1.B"), ("check", "1.C"),
                     ("submit", None)]
    plain = check_cells.strip(again)
    assert "checks" not in plain.metadata["grader"]
    assert not [c for c in plain.cells if "grader" in c.metadata]
    assert json.loads(notebook_text(plain))["metadata"]["grader"] == {"assignment": "rnn_and_grad"}


def test_report_reads_attempts_as_json_lines_only(tmp_path: Path) -> None:
    import io
    import pickle
    import zipfile

    from rich.console import Console

    from grader.reports import class_report
    from grader.student import submit

    (tmp_path / "ada").mkdir()
    for question, score in (("1.A", 0.0), ("1.A", 4.0), ("all", 9.0)):
        submit.record_attempt(tmp_path / "ada", assignment="rnn_and_grad", question=question,
                              score=score, max_score=15.0, code_sha256="0" * 64)
    with (tmp_path / "ada" / "rnn_and_grad.attempts.jsonl").open("a") as f:
        f.write("not json\n[1, 2]\n")
    (tmp_path / "bob").mkdir()  # only the upload zip
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("rnn_and_grad.attempts.jsonl",
                    '{"time": "2026-12-01T10:00:00+00:00", "question": "1.C", "score": 6}\n')
    (tmp_path / "bob" / "rnn_and_grad_submission.zip").write_bytes(buf.getvalue())
    (tmp_path / "eve").mkdir()  # a pickle is not an attempts log
    (tmp_path / "eve" / "rnn_and_grad.attempts.jsonl").write_bytes(pickle.dumps({"question": "x"}))
    found = class_report.attempts(tmp_path)
    assert sorted(found) == ["ada", "bob"]
    assert [(a["question"], a["score"]) for a in found["ada"]] == [("1.A", 0.0), ("1.A", 4.0),
                                                                   ("all", 9.0)]
    assert found["bob"] == [{"time": "2026-12-01T10:00:00+00:00", "question": "1.C", "score": 6}]
    console = Console(file=io.StringIO(), width=200)
    class_report.print_attempts(found, console)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "ada" in text and "1.A: 2, all: 1" in text and "1.C: 1" in text
