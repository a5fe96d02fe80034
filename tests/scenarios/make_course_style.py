"""Scenario notebooks for rnn_and_grad written the way the course's students write them.

Each is named by the outcome the grader must report. They reproduce the course's conventions
(our own code and text, not the course's): a Colab first cell, `!pip` and `%pip` lines,
`%matplotlib widget`, GPU-minded code (`.cuda()`, `.to("cuda")`) and, for the stub, the
course's way of leaving work undone: results never set, `NotImplementedError` *returned*.

Run ``python tests/scenarios/make_course_style.py`` to (re)write
``tests/scenarios/rnn_and_grad/<outcome>/rnn_and_grad.ipynb``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from grader.publish.template import notebook_text, read_notebook, replace_blocks, write_text_atomic  # noqa: E402

OUT = ROOT / "tests" / "scenarios" / "rnn_and_grad"
SOURCE = "reference/rnn_and_grad.ipynb"

COLAB_CELL = """\
# Run this first on Colab.
from google.colab import output
output.enable_custom_widget_manager()
from google.colab import drive
drive.mount('/content/drive')
!pip install -q ipympl
%pip install --quiet tqdm"""

GPU_CELL = """\
%matplotlib widget
device = "cuda"
gpu_model = RecurrentRegressionModel(RNNLayer(1, 4)).cuda()
x_gpu = torch.randn(2, 3, 1).to(device)
out_gpu, _ = gpu_model(x_gpu)
print("ran on", out_gpu.device)
files = !ls"""

# Untouched course-style stubs: the results are never set, or the exception is returned.
STUB = {
    "1.A init": "pass",
    "1.A forward": "h_list = []",
    "1.B init": "pass",
    "1.B forward": "pass",
    "1.C loss": "return NotImplementedError()",
    "1.D recurrent weight": "return NotImplementedError()",
    "1.D scaling": "pass",
}


def _cell(source: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)  # type: ignore[no-untyped-call]
    cell.id = f"course-{abs(hash(source)) % 10**8:08d}"[:16]
    return cell


def course_style(replacements: dict[str, str]) -> nbformat.NotebookNode:
    nb = replace_blocks(read_notebook(ROOT / SOURCE), source_name=SOURCE, replacements=replacements)
    first = _cell(COLAB_CELL)
    first.id = "course-colab-cell"
    gpu = _cell(GPU_CELL)
    gpu.id = "course-gpu-cell"
    nb.cells.insert(0, first)
    # After the 1.B self-test, where RNNLayer and RecurrentRegressionModel exist.
    after = next(i for i, c in enumerate(nb.cells) if "Self-test for 1.B" in c.source)
    nb.cells.insert(after + 1, gpu)
    return nb


SCENARIOS = {
    "full_marks_colab_gpu_style": {},
    "zero_course_stub": STUB,
}


def main() -> None:
    for name, replacements in SCENARIOS.items():
        path = OUT / name / "rnn_and_grad.ipynb"
        write_text_atomic(path, notebook_text(course_style(replacements)))
        print(path.relative_to(ROOT))


if __name__ == "__main__":
    main()
