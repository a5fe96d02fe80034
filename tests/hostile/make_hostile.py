"""Write tests/hostile/notebooks/<case>.ipynb from cases.py: `python tests/hostile/make_hostile.py`."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from cases import CASES  # noqa: E402

from grader.publish.template import make_template, notebook_text, read_notebook, replace_blocks, solution_blocks  # noqa: E402


def build(name: str) -> nbformat.NotebookNode:
    case = CASES[name]
    reference_path = ROOT / "reference" / "rnn_and_grad.ipynb"
    reference = read_notebook(reference_path)
    if case.base == "stub":
        nb = make_template(reference, source_name=str(reference_path))
    else:
        keep = {b.key: b.code for b in solution_blocks(reference, source_name=str(reference_path))}
        nb = replace_blocks(reference, source_name=str(reference_path), replacements=keep)
    hostile = [nbformat.v4.new_code_cell(source) for source in case.cells]
    nb.cells = hostile + nb.cells if case.at_start else nb.cells + hostile
    for cell in hostile:
        index = nb.cells.index(cell)
        prev = max(i for i, c in enumerate(nb.cells[:index]) if c.cell_type == "code")
        cell.source = (cell.source.replace("@@CELL_INDEX@@", str(index))
                       .replace("@@PREV_CODE_INDEX@@", str(prev)))
    if name == "kernelspec_ignored":
        nb.metadata["kernelspec"] = {"name": "evil", "display_name": "evil",
                                     "language": "python", "argv": ["/bin/sh", "-c", "touch /tmp/pwned"]}
        nb.metadata["language_info"] = {"name": "bash"}
    return nb


def _malformed(text: str) -> str:
    """Code cells without ``source``, with a number as ``source``, and without ``cell_type``."""
    import json

    data = json.loads(text)
    code = [c for c in data["cells"] if c["cell_type"] == "code"]
    del code[0]["source"]
    code[1]["source"] = 42
    del code[2]["cell_type"]
    return json.dumps(data, indent=1) + "\n"


def main() -> None:
    out = HERE / "notebooks"
    out.mkdir(exist_ok=True)
    for name in CASES:
        text = notebook_text(build(name))
        if name == "malformed_cells":  # what nbformat's writer refuses to write: do it by hand
            text = _malformed(text)
        (out / f"{name}.ipynb").write_text(text)
    print(f"wrote {len(CASES)} notebooks to {out}")


if __name__ == "__main__":
    main()
