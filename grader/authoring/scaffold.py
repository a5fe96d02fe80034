"""``grader new NAME``: a new assignment that builds and grades at once.

It writes, inside a course folder (``grader.course``), ``assignments/NAME/assignment.yaml``,
``assignments/NAME/probes.py`` and ``reference/NAME.ipynb``: one solution block (a softmax in
torch) and one check of each common kind (a value, a shape, a gradient, a hidden check). The
instructor then replaces the function and the checks with their own; docs/authoring.md walks
through it.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

from grader.errors import InputError
from grader.files import atomic_write_text
from grader.spec_schema import SCHEMA_PATH

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

SPEC = """\
# yaml-language-server: $schema={schema}
# The assignment's checks: docs/authoring.md explains every key and its default.
schema_version: 1
assignment: {name}
title: "{name}: softmax"
notebook: {name}.ipynb
probes: probes.py
limits:
  cell_seconds: 30
  notebook_seconds: 120
  probe_seconds: 10
  memory_mb: 3072

questions:
  - {{id: "Q1", title: "softmax"}}

checks:
  # A value: the student's softmax on seeded inputs, against the reference's.
  - name: softmax_values
    question: "Q1"
    visibility: visible
    points: 2
    probe: softmax_values
    args:
      x: {{array: normal, shape: [3, 5], seed: 1}}
    outputs: [probabilities]
    hint: "exp of each entry, divided by the sum of its row's exps."
  # A shape: the probe returns it as a list of integers.
  - name: softmax_shape
    question: "Q1"
    visibility: visible
    points: 1
    probe: softmax_values
    args:
      x: {{array: normal, shape: [2, 4, 3], seed: 2}}
    outputs: [shape]
    tolerance: {{rtol: 0, atol: 0}}
    hint: "Normalise over the last dimension only; the output has the input's shape."
  # A gradient: what autograd gives through the student's code.
  - name: softmax_gradient
    question: "Q1"
    visibility: hidden
    points: 2
    probe: softmax_gradient
    args:
      x: {{array: normal, shape: [4, 6], seed: 3}}
      weights: {{array: normal, shape: [4, 6], seed: 4}}
    tolerance: {{rtol: 1e-4, atol: 1e-6}}
  # A hidden value on inputs a naive exp overflows on.
  - name: softmax_large_inputs
    question: "Q1"
    visibility: hidden
    points: 1
    probe: softmax_values
    args:
      x: {{array: normal, shape: [2, 5], seed: 5, scale: 100}}
    outputs: [probabilities]
"""

PROBES = '''\
"""Probes of {name}: each calls the student's code and returns a dict of outputs.

A probe runs in the sandbox after the notebook; ``ns`` is the notebook's namespace. Return
tensors, arrays, numbers, strings and lists of them (a shape as ``list(t.shape)``, never a
``torch.Size``). Set any parameter the probe creates (``probelib.fill_``) or seed it here:
a check must not depend on the student's random state (``grader build`` refuses it).
"""

from grader.probelib import detached, need, tensor


def softmax_values(ns, *, x):
    out = need(ns, "softmax")(tensor(x))
    return {{"probabilities": detached(out), "shape": list(out.shape)}}


def softmax_gradient(ns, *, x, weights):
    x = tensor(x, grad=True)
    out = need(ns, "softmax")(x)
    (out * tensor(weights)).sum().backward()
    return {{"grad": x.grad}}
'''

CELLS = [
    ("markdown", "# {name}\n\nWrite `softmax(x)`: for each row of `x` (its last dimension), "
                 "$\\mathrm{{softmax}}(x)_i = e^{{x_i}} / \\sum_j e^{{x_j}}$. Keep it finite for "
                 "large inputs."),
    ("code", "import torch"),
    ("code", 'def softmax(x):\n    """Softmax over the last dimension of x."""\n'
             "    # BEGIN SOLUTION: softmax\n"
             "    shifted = x - x.max(dim=-1, keepdim=True).values\n"
             "    e = shifted.exp()\n"
             "    return e / e.sum(dim=-1, keepdim=True)\n"
             "    # END SOLUTION"),
    ("code", "print(softmax(torch.tensor([[1.0, 2.0, 3.0]])))"),
]


def reference_notebook(name: str) -> str:
    nb = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    nb.metadata = {"grader": {"assignment": name},
                   "kernelspec": {"name": "python3", "display_name": "Python 3",
                                  "language": "python"}}
    for i, (kind, source) in enumerate(CELLS):
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        cell = make(source.format(name=name))  # type: ignore[no-untyped-call]
        cell.id = f"cell-{i}"
        nb.cells.append(cell)
    text: str = nbformat.writes(nb)  # type: ignore[no-untyped-call]
    return text + "\n"


def scaffold(course: Path, name: str) -> list[Path]:
    """Write the new assignment into ``course``; return the files written. Nothing existing
    is overwritten."""
    if not _NAME.match(name):
        raise InputError(f"{name!r}: expected a name such as 'gru_cells' (a-z, 0-9 and _, "
                         "starting with a-z): the folder, the notebook and the assignment are called so")
    files = {
        course / "assignments" / name / "assignment.yaml":
            SPEC.format(name=name, schema=SCHEMA_PATH.as_uri()),
        course / "assignments" / name / "probes.py": PROBES.format(name=name),
        course / "reference" / f"{name}.ipynb": reference_notebook(name),
    }
    existing = [str(p) for p in files if p.exists()]
    if existing:
        raise InputError(f"{', '.join(existing)}: already exists (grader new never overwrites)")
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    return list(files)
