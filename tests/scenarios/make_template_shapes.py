"""Scenario notebooks shaped like the course's recent templates (our own code and text).

The course's later templates leave work as comment-only TODO bodies (no ``raise``, no
``pass``), keep ``model_type="lstm"`` as the classifier's default and leave ``hidden_size``
for the student to define. Each scenario is named by the outcome the grader must report:

* ``rnn_and_grad/not_implemented_comment_only``: every solution block is a comment, as the
  template leaves it: every check says "not implemented yet", none shows a hint.
* ``rnn_and_grad/fails_1c_unpacks_shape``: the reference, but ``loss_fn`` unpacks
  ``pred.shape`` into two names: the message names the call and the shapes passed.
* ``rnn_last_name/not_implemented_comment_only``: comment-only bodies, the LSTM default, no
  ``hidden_size``: "not implemented yet" for 2.A and 2.B, the training cell's NameError for 2.C.
* ``rnn_last_name/not_implemented_embedding``: the layers written but the embedding's
  block a comment: 2.B says the attribute is not set yet, and in which call.
* ``rnn_last_name/fails_2c_hidden_size_undefined``: every part written, but ``hidden_size``
  left undefined and the model built with the LSTM default: the visible checks pass, the
  training cell's NameError is the notebook's error and the reason 2.C scores nothing.

Run ``python tests/scenarios/make_template_shapes.py`` to (re)write them under
``tests/scenarios/template_shapes/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from grader.publish.template import (  # noqa: E402
    notebook_text,
    read_notebook,
    replace_blocks,
    solution_blocks,
    write_text_atomic,
)

OUT = Path(__file__).resolve().parent / "template_shapes"
TODO = "# TODO: your code here\n# (see the markdown above for what this part computes)"


def _comment_only(name: str, keep: tuple[str, ...] = ()) -> dict[str, str]:
    nb = read_notebook(ROOT / "reference" / name)
    return {b.key: TODO for b in solution_blocks(nb, source_name=name) if b.key not in keep}


def _write(assignment: str, outcome: str, name: str, replacements: dict[str, str],
           edit: dict[str, tuple[str, str]] | None = None) -> None:
    nb = replace_blocks(read_notebook(ROOT / "reference" / name), source_name=name,
                        replacements=replacements)
    for cell in nb.cells:
        for old, new in (edit or {}).values():
            if cell.cell_type == "code" and old in cell.source:
                cell.source = cell.source.replace(old, new)
        cell.outputs = [] if cell.cell_type == "code" else cell.get("outputs")
        if cell.cell_type == "code":
            cell.execution_count = None
        else:
            cell.pop("outputs", None)
    path = OUT / assignment / outcome / name
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, notebook_text(nb))


# The hyper-parameter cell as the course's later templates leave it: hidden_size unset.
_NO_HIDDEN_SIZE = {
    "hidden size": ("hidden_size = 32\n", "# hidden_size = ...  (TODO: choose one)\n"),
    "solution line": ("hidden_size, lr = 64, 3e-3\n", ""),
    "lstm default": (', model_type="rnn")', ")"),
}


def main() -> None:
    _write("rnn_and_grad", "not_implemented_comment_only", "rnn_and_grad.ipynb",
           _comment_only("rnn_and_grad.ipynb"))
    _write("rnn_and_grad", "fails_1c_unpacks_shape", "rnn_and_grad.ipynb", {
        "1.C loss": "batch, time = pred.shape  # wrong: pred is (batch, time, output_dim)\n"
                    "err = (pred - y) ** 2\n"
                    "return err[:, -1].mean() if last_timestep_only else err.mean()"})
    _write("rnn_last_name", "not_implemented_comment_only", "rnn_last_name.ipynb",
           _comment_only("rnn_last_name.ipynb"), edit=_NO_HIDDEN_SIZE)
    _write("rnn_last_name", "fails_2c_hidden_size_undefined", "rnn_last_name.ipynb", {},
           edit=_NO_HIDDEN_SIZE)
    _write("rnn_last_name", "not_implemented_embedding", "rnn_last_name.ipynb",
           {"RecurrentClassifier embedding": TODO}, edit={
               "epochs": ("epochs = 20\n", "epochs = 1\n")})


if __name__ == "__main__":
    main()
