"""Write this course's reference notebook and its example submissions.

``reference/gru_lstm_cells.ipynb`` is made from ``CELLS``; each example in
``examples/submissions/<name>/`` replaces some of the reference's solution blocks
(``grader.publish.template.replace_blocks``) and is named after the outcome the grader must
report. ``untouched_stub`` is the student template. Run it again after changing either:

    python courses/recurrent_cells/make_notebooks.py
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat

from grader.publish.template import make_template, notebook_text, read_notebook, replace_blocks

HERE = Path(__file__).resolve().parent
NAME = "gru_lstm_cells"
REFERENCE = HERE / "reference" / f"{NAME}.ipynb"
SUBMISSIONS = HERE / "examples" / "submissions"

CELLS = [
    ("markdown", """# GRU and LSTM cells

You will write one step of a gated recurrent unit (GRU) and of a long short-term memory (LSTM)
cell from their equations, then train a GRU that tells noisy waves apart by how many cycles
they make. Shapes: `x` is `[batch, input]`, `h` and `c` are `[batch, hidden]`; a weight `W_k`
is `[hidden, input]`, `U_k` is `[hidden, hidden]`, a bias `b_k` is `[hidden]`, so
`W_k x_t` is `x @ W_k.T`. `σ` is the logistic sigmoid and `⊙` the elementwise product."""),
    ("code", """import numpy as np
import torch

data = np.load("data/waves/train.npz")
X = torch.tensor(data["inputs"], dtype=torch.float32)  # [N, 16 steps, 1 feature]
y = torch.tensor(data["labels"])
classes = [str(c) for c in data["classes"]]
print(X.shape, classes)"""),
    ("markdown", """## Q1. The GRU cell

$z_t = σ(W_z x_t + U_z h_{t-1} + b_z)$ (update gate)

$r_t = σ(W_r x_t + U_r h_{t-1} + b_r)$ (reset gate)

$\\tilde h_t = \\tanh(W_h x_t + U_h (r_t ⊙ h_{t-1}) + b_h)$ (candidate)

$h_t = (1 - z_t) ⊙ h_{t-1} + z_t ⊙ \\tilde h_t$

`p` is a dict of tensors with keys `W_z, U_z, b_z, W_r, U_r, b_r, W_h, U_h, b_h`."""),
    ("code", """def gru_cell(x, h, p):
    \"\"\"One GRU step: returns h_t.\"\"\"
    # BEGIN SOLUTION: gru_cell
    z = torch.sigmoid(x @ p["W_z"].T + h @ p["U_z"].T + p["b_z"])
    r = torch.sigmoid(x @ p["W_r"].T + h @ p["U_r"].T + p["b_r"])
    h_tilde = torch.tanh(x @ p["W_h"].T + (r * h) @ p["U_h"].T + p["b_h"])
    return (1 - z) * h + z * h_tilde
    # END SOLUTION"""),
    ("markdown", """## Q2. The LSTM cell

$i_t = σ(W_i x_t + U_i h_{t-1} + b_i)$, $f_t = σ(W_f x_t + U_f h_{t-1} + b_f)$,
$o_t = σ(W_o x_t + U_o h_{t-1} + b_o)$ (input, forget, output gates)

$\\tilde c_t = \\tanh(W_c x_t + U_c h_{t-1} + b_c)$

$c_t = f_t ⊙ c_{t-1} + i_t ⊙ \\tilde c_t$, $h_t = o_t ⊙ \\tanh(c_t)$

`p` has keys `W_k, U_k, b_k` for `k` in `i, f, o, c`. Return the pair `(h_t, c_t)`."""),
    ("code", """def lstm_cell(x, h, c, p):
    \"\"\"One LSTM step: returns (h_t, c_t).\"\"\"
    # BEGIN SOLUTION: lstm_cell
    def gate(k, squash):
        return squash(x @ p[f"W_{k}"].T + h @ p[f"U_{k}"].T + p[f"b_{k}"])

    i, f, o = gate("i", torch.sigmoid), gate("f", torch.sigmoid), gate("o", torch.sigmoid)
    c_next = f * c + i * gate("c", torch.tanh)
    return o * torch.tanh(c_next), c_next
    # END SOLUTION"""),
    ("markdown", """## Q3. A wave classifier

`WaveClassifier` runs your `gru_cell` over the 16 steps of each sequence, from `h_0 = 0`, and
reads the class from the last hidden state. Write its `forward`; the training cell below then
fits it, and the grader scores it on sequences you never see."""),
    ("code", """def init_params(input_size, hidden_size, gates, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = {}
    for k in gates:
        p[f"W_{k}"] = torch.nn.Parameter(torch.randn(hidden_size, input_size, generator=g) / input_size**0.5)
        p[f"U_{k}"] = torch.nn.Parameter(torch.randn(hidden_size, hidden_size, generator=g) / hidden_size**0.5)
        p[f"b_{k}"] = torch.nn.Parameter(torch.zeros(hidden_size))
    return torch.nn.ParameterDict(p)


class WaveClassifier(torch.nn.Module):
    def __init__(self, input_size, hidden_size, n_classes):
        super().__init__()
        self.hidden_size = hidden_size
        self.cell = init_params(input_size, hidden_size, "zrh")
        self.out = torch.nn.Linear(hidden_size, n_classes)

    def forward(self, x):
        \"\"\"x: [batch, steps, input] -> logits [batch, n_classes].\"\"\"
        # BEGIN SOLUTION: classifier
        h = torch.zeros(x.shape[0], self.hidden_size)
        for t in range(x.shape[1]):
            h = gru_cell(x[:, t], h, self.cell)
        return self.out(h)
        # END SOLUTION"""),
    ("code", """torch.manual_seed(0)
model = WaveClassifier(1, 16, len(classes))
optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
for epoch in range(40):
    optimizer.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(X), y)
    loss.backward()
    optimizer.step()


def predict(model, x):
    with torch.no_grad():
        return model(torch.as_tensor(x, dtype=torch.float32)).argmax(dim=1)


print(f"loss {loss.item():.3f}, training accuracy {(predict(model, X) == y).float().mean():.1%}")"""),
]

# Correct, written another way: the gates stacked into one product, h as an interpolation,
# the cell state with addcmul, the sequence walked with unbind.
ALTERNATIVE = {
    "gru_cell": """
        W = torch.cat([torch.cat([p["W_z"], p["U_z"]], dim=1), torch.cat([p["W_r"], p["U_r"]], dim=1)])
        gates = torch.sigmoid(torch.cat([x, h], dim=1) @ W.T + torch.cat([p["b_z"], p["b_r"]]))
        z, r = gates.chunk(2, dim=1)
        candidate = torch.tanh(torch.addmm(p["b_h"], x, p["W_h"].T) + torch.mm(r * h, p["U_h"].T))
        return h + z * (candidate - h)
    """,
    "lstm_cell": """
        names = ("i", "f", "o", "c")
        W = torch.cat([p["W_" + k] for k in names])
        U = torch.cat([p["U_" + k] for k in names])
        b = torch.cat([p["b_" + k] for k in names])
        i, f, o, g = (x @ W.T + h @ U.T + b).chunk(4, dim=1)
        c_next = torch.addcmul(torch.sigmoid(f) * c, torch.sigmoid(i), torch.tanh(g))
        return torch.sigmoid(o) * c_next.tanh(), c_next
    """,
    "classifier": """
        h = x.new_zeros(x.shape[0], self.hidden_size)
        for x_t in x.unbind(dim=1):
            h = gru_cell(x_t, h, self.cell)
        return self.out(h)
    """,
}

VARIANTS = {
    "full_marks": {},
    "full_marks_written_differently": ALTERNATIVE,
    # The update gate's two sides exchanged: keeps the candidate where it should keep the past.
    "fails_gru_gate_swapped": {"gru_cell": """
        z = torch.sigmoid(x @ p["W_z"].T + h @ p["U_z"].T + p["b_z"])
        r = torch.sigmoid(x @ p["W_r"].T + h @ p["U_r"].T + p["b_r"])
        h_tilde = torch.tanh(x @ p["W_h"].T + (r * h) @ p["U_h"].T + p["b_h"])
        return z * h + (1 - z) * h_tilde
    """},
    # No forget gate: the cell state only ever accumulates.
    "fails_lstm_no_forget_gate": {"lstm_cell": """
        def gate(k, squash):
            return squash(x @ p[f"W_{k}"].T + h @ p[f"U_{k}"].T + p[f"b_{k}"])

        i, o = gate("i", torch.sigmoid), gate("o", torch.sigmoid)
        c_next = c + i * gate("c", torch.tanh)
        return o * torch.tanh(c_next), c_next
    """},
    # Classifies from the first step only: one noisy sample of a wave of random phase.
    "fails_classifier_first_step_only": {"classifier": """
        h = gru_cell(x[:, 0], torch.zeros(x.shape[0], self.hidden_size), self.cell)
        return self.out(h)
    """},
}


def reference() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"grader": {"assignment": NAME},
                   "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    for i, (kind, source) in enumerate(CELLS):
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        cell = make(source)
        cell.id = f"cell-{i}"  # fixed ids: the same file every time
        nb.cells.append(cell)
    return nb


def main() -> None:
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    REFERENCE.write_text(notebook_text(reference()), encoding="utf-8")
    nb = read_notebook(REFERENCE)
    shutil.rmtree(SUBMISSIONS, ignore_errors=True)
    notebooks = {name: replace_blocks(nb, source_name=f"reference/{NAME}.ipynb",
                                      replacements=blocks) for name, blocks in VARIANTS.items()}
    notebooks["untouched_stub"] = make_template(nb, source_name=f"reference/{NAME}.ipynb")
    for name, variant in notebooks.items():
        path = SUBMISSIONS / name / f"{NAME}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(notebook_text(variant), encoding="utf-8")


if __name__ == "__main__":
    main()
