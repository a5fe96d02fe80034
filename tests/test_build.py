"""Tests for grader.build (solution markers -> student template) and the reference notebook."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat import v4

from grader.publish.template import (
    DEFAULT_KEY,
    Block,
    BuildError,
    build_templates,
    make_template,
    notebook_text,
    read_notebook,
    replace_blocks,
    solution_blocks,
    stale_templates,
)

ROOT = Path(__file__).resolve().parent.parent
SRC = "ref/demo.ipynb"
NB: Any = v4  # nbformat.v4 is untyped


def _nb(*sources: str) -> nbformat.NotebookNode:
    cells = [NB.new_markdown_cell("# Demo\n# BEGIN SOLUTION in markdown is ignored")]
    for i, source in enumerate(sources):
        cell = NB.new_code_cell(source, id=f"c{i}")
        cell.execution_count = 3
        cell.outputs = [NB.new_output("stream", name="stdout", text="hi\n")]
        cells.append(cell)
    nb: nbformat.NotebookNode = NB.new_notebook(cells=cells)
    nb.cells[0].id = "md"
    nb.metadata = {"grader": {"assignment": "demo"}, "kernelspec": {"name": "python3"}}
    return nb


CLASS_SRC = """class Layer:
    def __init__(self, n):
        self.n = n
        # BEGIN SOLUTION: 1.A init
        self.w = [0.0] * n

        self.b = 0.0
        # END SOLUTION

    def forward(self, x):
        # BEGIN SOLUTION
        return [w * x + self.b for w in self.w]
        # END SOLUTION"""

FUNC_SRC = """def loss(a, b):
    # BEGIN SOLUTION: 1.C loss   
    return (a - b) ** 2
    # END SOLUTION
print(loss(1, 2))"""


def test_template_exact_output() -> None:
    nb = _nb(CLASS_SRC, FUNC_SRC)
    template = make_template(nb, source_name=SRC)
    assert template.cells[1].source == (
        "class Layer:\n"
        "    def __init__(self, n):\n"
        "        self.n = n\n"
        "        # TODO (1.A init): write your code here\n"
        '        raise NotImplementedError("1.A init")\n'
        "\n"
        "    def forward(self, x):\n"
        "        # TODO (your code here): write your code here\n"
        '        raise NotImplementedError("your code here")'
    )
    assert template.cells[2].source == (
        "def loss(a, b):\n"
        "    # TODO (1.C loss): write your code here\n"
        '    raise NotImplementedError("1.C loss")\n'
        "print(loss(1, 2))"
    )
    for cell in template.cells[1:]:
        assert cell.outputs == []
        assert cell.execution_count is None
    assert template.cells[0].source == nb.cells[0].source
    assert template.metadata.grader == {"assignment": "demo"}
    # the input is left alone
    assert "# BEGIN SOLUTION: 1.A init" in nb.cells[1].source
    assert nb.cells[1].outputs


def test_blocks_and_default_key() -> None:
    blocks = solution_blocks(_nb(CLASS_SRC, FUNC_SRC), source_name=SRC)
    assert [b.key for b in blocks] == ["1.A init", DEFAULT_KEY, "1.C loss"]
    assert DEFAULT_KEY == "your code here"
    assert blocks[0] == Block(
        key="1.A init",
        cell_index=1,
        start_line=4,
        end_line=8,
        indent="        ",
        code="self.w = [0.0] * n\n\nself.b = 0.0",
    )
    assert blocks[2].cell_index == 2 and blocks[2].indent == "    "


def test_replace_blocks() -> None:
    nb = _nb(CLASS_SRC, FUNC_SRC)
    out = replace_blocks(
        nb,
        source_name=SRC,
        replacements={"1.C loss": "\n  if a:\n    return 0\n  return abs(a - b)\n"},
    )
    assert out.cells[2].source == (
        "def loss(a, b):\n    if a:\n      return 0\n    return abs(a - b)\nprint(loss(1, 2))"
    )
    # other blocks keep their code, markers removed; outputs are kept
    assert out.cells[1].source == (
        "class Layer:\n"
        "    def __init__(self, n):\n"
        "        self.n = n\n"
        "        self.w = [0.0] * n\n"
        "\n"
        "        self.b = 0.0\n"
        "\n"
        "    def forward(self, x):\n"
        "        return [w * x + self.b for w in self.w]"
    )
    assert out.cells[1].outputs == nb.cells[1].outputs
    # an empty replacement becomes `pass`; code round-trips
    empty = replace_blocks(nb, source_name=SRC, replacements={"1.C loss": ""})
    assert empty.cells[2].source.split("\n")[1] == "    pass"
    blocks = solution_blocks(nb, source_name=SRC)
    same = replace_blocks(
        nb, source_name=SRC, replacements={b.key: b.code for b in blocks}
    )
    assert notebook_text(same) == notebook_text(
        replace_blocks(nb, source_name=SRC, replacements={})
    )


def test_replace_unknown_key() -> None:
    with pytest.raises(
        BuildError, match=r"ref/demo\.ipynb.*'1\.Z'.*known keys.*'1\.A init'"
    ):
        replace_blocks(_nb(CLASS_SRC), source_name=SRC, replacements={"1.Z": "pass"})


def test_single_line_solution_mark() -> None:
    nb = _nb("x = 1\ny = 2  # SOLUTION\nz = 3")
    assert make_template(nb, source_name=SRC).cells[1].source == "x = 1\nz = 3"
    kept = replace_blocks(nb, source_name=SRC, replacements={})
    assert kept.cells[1].source == "x = 1\ny = 2\nz = 3"


@pytest.mark.parametrize(
    ("source", "where", "what"),
    [
        ("a = 1\n# BEGIN SOLUTION: k\nb = 2", "cell 1, line 2", "without a matching"),
        (
            "a = 1\nb = 2\n    # END SOLUTION",
            "cell 1, line 3",
            "without '# BEGIN SOLUTION'",
        ),
        (
            "# BEGIN SOLUTION: a\nx = 1\n# BEGIN SOLUTION: b\n# END SOLUTION\n# END SOLUTION",
            "cell 1, line 3",
            "nested",
        ),
        ("# BEGIN SOLUTION 1.A\nx = 1\n# END SOLUTION", "cell 1, line 1", "malformed"),
        (
            "# BEGIN SOLUTION:\nx = 1\n# END SOLUTION",
            "cell 1, line 1",
            "empty solution key",
        ),
        ('# BEGIN SOLUTION: a"b\nx = 1\n# END SOLUTION', "cell 1, line 1", "quotes"),
        (
            "if x:\n    # BEGIN SOLUTION: k\n  y = 1\n    # END SOLUTION",
            "cell 1, line 3",
            "less",
        ),
    ],
)
def test_marker_errors(source: str, where: str, what: str) -> None:
    nb = _nb(source)
    for call in (solution_blocks, make_template):
        with pytest.raises(BuildError) as info:
            call(nb, source_name=SRC)
        message = str(info.value)
        assert message.startswith(f"{SRC}: {where}:"), message
        assert what in message


def test_blocks_cannot_span_cells() -> None:
    nb = _nb("x = 0", "# BEGIN SOLUTION: k\nx = 1", "x = 2\n# END SOLUTION")
    with pytest.raises(BuildError, match=r"cell 2, line 1: .*without a matching"):
        solution_blocks(nb, source_name=SRC)


def test_duplicate_key() -> None:
    nb = _nb(CLASS_SRC, "# BEGIN SOLUTION: 1.A init\nx = 1\n# END SOLUTION")
    with pytest.raises(BuildError) as info:
        make_template(nb, source_name=SRC)
    message = str(info.value)
    assert message.startswith(
        f"{SRC}: cell 2, line 1: duplicate solution key '1.A init'"
    )
    assert "first used in cell 1, line 4" in message


def test_duplicate_default_key() -> None:
    nb = _nb(
        "# BEGIN SOLUTION\nx = 1\n# END SOLUTION",
        "# BEGIN SOLUTION\ny = 1\n# END SOLUTION",
    )
    with pytest.raises(
        BuildError, match=r"cell 2, line 1: duplicate.*give each block its own key"
    ):
        solution_blocks(nb, source_name=SRC)


def test_build_is_deterministic_and_atomic(tmp_path: Path) -> None:
    ref = tmp_path / "reference"
    ref.mkdir()
    (ref / "demo.ipynb").write_text(
        notebook_text(_nb(CLASS_SRC, FUNC_SRC)), encoding="utf-8"
    )
    out = tmp_path / "template"
    assert stale_templates(reference_dir=ref, template_dir=out) == ["demo.ipynb"]
    written = build_templates(reference_dir=ref, template_dir=out)
    assert written == [out / "demo.ipynb"]
    first = written[0].read_bytes()
    assert build_templates(reference_dir=ref, template_dir=out) == written
    assert written[0].read_bytes() == first
    assert sorted(p.name for p in out.iterdir()) == ["demo.ipynb"]  # no temp files left
    assert written[0].stat().st_mode & 0o777 == 0o644
    assert stale_templates(reference_dir=ref, template_dir=out) == []
    assert b"NotImplementedError" in first and b"self.w = [0.0]" not in first
    written[0].write_bytes(first + b" ")
    assert stale_templates(reference_dir=ref, template_dir=out) == ["demo.ipynb"]


def test_bad_reference_writes_nothing(tmp_path: Path) -> None:
    ref = tmp_path / "reference"
    ref.mkdir()
    (ref / "a.ipynb").write_text(notebook_text(_nb(FUNC_SRC)), encoding="utf-8")
    (ref / "b.ipynb").write_text(notebook_text(_nb("# END SOLUTION")), encoding="utf-8")
    with pytest.raises(BuildError, match=r"b\.ipynb: cell 1, line 1"):
        build_templates(reference_dir=ref, template_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_reference_blocks() -> None:
    nb = read_notebook(ROOT / "reference" / "rnn_and_grad.ipynb")
    keys = [
        b.key for b in solution_blocks(nb, source_name="reference/rnn_and_grad.ipynb")
    ]
    assert keys == [
        "1.A init",
        "1.A forward",
        "1.B init",
        "1.B forward",
        "1.C loss",
        "1.D recurrent weight",
        "1.D scaling",
    ]
    assert nb.metadata.grader == {"assignment": "rnn_and_grad"}


def test_student_template_is_fresh() -> None:
    """The template is the reference with its solutions cut, plus the check cells and embedded
    checks `grader build` adds (publish.check_cells; test_student_facing checks those)."""
    from grader.publish import check_cells

    for ref in sorted((ROOT / "reference").glob("*.ipynb")):
        committed = read_notebook(ROOT / "student_template" / ref.name)
        assert notebook_text(check_cells.strip(committed)) == notebook_text(
            make_template(read_notebook(ref), source_name=str(ref))), (
            f"student_template/{ref.name} is out of date: run `grader build` and commit the result")
        kinds = [c.metadata.get("grader", {}).get("cell") for c in committed.cells]
        assert kinds[0] == "setup" and kinds[-1] == "submit"


@pytest.mark.slow
def test_reference_notebook_runs_and_self_tests_pass() -> None:
    from nbclient import NotebookClient

    nb = read_notebook(ROOT / "reference" / "rnn_and_grad.ipynb")
    NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT)}},
    ).execute()
    text = ""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for output in cell.outputs:
            assert output.output_type != "error", (
                f"cell {index}: {output.get('evalue')}"
            )
            if output.output_type == "stream":
                text += output.text
    errors = re.findall(r"^Max error [^:]+: (\S+)$", text, flags=re.MULTILINE)
    assert len(errors) == 8, text
    assert all(float(e) < 1e-4 for e in errors), text
    assert "(should be 18)" in text and "18 (should be 18)" in text
    assert "34 (should be 34)" in text


def test_shipped_visible_checks_are_fresh_and_hold_no_hidden_check() -> None:
    """student_template/checks/ is what `grader build` writes now, and only visible checks."""
    from rich.console import Console

    from grader.publish.bundle import build_student_package

    stale = build_student_package(root=ROOT, console=Console(stderr=True), check_only=True)
    assert stale == [], "student_template/ is stale: run `grader build`"
    shipped = (ROOT / "student_template" / "checks" / "rnn_and_grad" / "assignment.yaml").read_text()
    assert "visibility: hidden" not in shipped and "1A_forward_other_shapes" not in shipped


def _flip_last_bits(text: str) -> tuple[str, int]:
    """expected.json with the lowest mantissa bit of every float flipped: what another CPU
    computes. Returns the new text and how many floats changed."""
    import base64
    import json

    import numpy as np

    flipped = 0

    def walk(v: Any) -> Any:
        nonlocal flipped
        if isinstance(v, dict) and set(v) == {"__nd__"}:
            dtype, shape, payload = v["__nd__"]
            arr = np.frombuffer(base64.b64decode(payload), dtype=dtype).copy()
            if arr.dtype.kind == "f" and arr.size:
                ints = arr.view(np.dtype(f"u{arr.dtype.itemsize}"))
                ints ^= 1
                flipped += arr.size
            return {"__nd__": [dtype, shape, base64.b64encode(arr.tobytes()).decode()]}
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, float):
            flipped += 1
            return float(np.nextafter(v, np.inf))
        return v

    return json.dumps(walk(json.loads(text)), indent=1, sort_keys=True) + "\n", flipped


@pytest.mark.slow
def test_expected_values_from_another_cpu_are_not_stale(tmp_path: Path) -> None:
    """`grader build --check-only` on a clone whose shipped floats differ in the last bit (as
    on another x86-64 CPU) passes; a real change of a value is still reported."""
    import shutil

    from tests.conftest import grader_cli

    copy = tmp_path / "project"
    for name in ("assignments", "reference", "student_template"):
        shutil.copytree(ROOT / name, copy / name, symlinks=True)
    total = 0
    for expected in sorted((copy / "student_template" / "checks").glob("*/expected.json")):
        text, n = _flip_last_bits(expected.read_text())
        expected.write_text(text)
        total += n
    assert total > 100
    # The template's wheel was built from those same files on that CPU: rebuild it from them.
    from grader.publish import student_package

    template = copy / "student_template"
    shipped = {p: p.read_bytes() for p in sorted(template.glob("checks/*/*")) if p.is_file()}
    for path, content in student_package.template_wheel(template_dir=template, checks=shipped).items():
        path.write_bytes(content)
    # ... and the notebooks, which embed those files in their metadata (publish.check_cells).
    from grader import course, spec
    from grader.publish import bundle, template as template_mod

    decorate = bundle._check_cells(spec.load_all(copy), template, shipped, course.load(copy))
    template_mod.build_templates(reference_dir=copy / "reference", template_dir=template,
                                 decorate=decorate)
    r = grader_cli("build", "--check-only", "--root", str(copy), env={"GRADER_NAMES_DATA": ""})
    assert r.returncode == 0, r.stdout + r.stderr
    # A real difference (beyond every check's tolerance) is stale.
    shipped = copy / "student_template" / "checks" / "rnn_and_grad" / "expected.json"
    shipped.write_text(shipped.read_text().replace('"count": 18', '"count": 19'))
    r = grader_cli("build", "--check-only", "--root", str(copy), env={"GRADER_NAMES_DATA": ""})
    assert r.returncode == 1
    # The wheel holds no checks (the library alone); the notebook embeds them, so it is stale too.
    assert ("stale: rnn_and_grad.ipynb, student_template/checks/rnn_and_grad/expected.json "
            "(run `grader build`)") in r.stderr


def test_an_output_no_check_reads_may_move_within_the_last_bit() -> None:
    """A check reading only ``shape`` of a probe that also returns ``h`` shipped with
    tolerance 0: another CPU's last bit in ``h`` made the second course's template stale."""
    import numpy as np

    from grader.grading.expected import encode, same_within_tolerance
    from grader.spec import Check, Tolerance

    shape = Check(name="shape", question="Q", visibility="visible", points=1, probe="step",
                  args={"seed": 4}, outputs=("shape",), tolerance=Tolerance(rtol=0, atol=0))
    key = shape.request_key
    h = np.array([0.49218, -0.115289], dtype=np.float32)
    old = encode({key: {"h": h, "shape": np.array([2, 6])}})
    moved = encode({key: {"h": np.nextafter(h, np.float32(1)), "shape": np.array([2, 6])}})
    assert old != moved and same_within_tolerance(old, moved, [shape])
    grown = encode({key: {"h": h, "shape": np.array([2, 7])}})
    assert not same_within_tolerance(old, grown, [shape])
    every = Check(**{**shape.__dict__, "outputs": None})  # one reading every output: 0 is 0
    assert not same_within_tolerance(old, moved, [every])
