"""Example submissions for rnn_and_grad, made from the reference notebook.

Each variant is named after the outcome the grader should report for it, and is a set of
replacements for the reference's solution blocks (see ``grader.build.replace_blocks``); blocks a
variant does not name keep the reference solution. ``untouched_stub`` is the student template.

Run ``python examples/variants.py`` to (re)write ``examples/submissions/<name>/rnn_and_grad.ipynb``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from grader.publish.template import (
    make_template,
    notebook_text,
    read_notebook,
    replace_blocks,
    write_text_atomic,
)

NOTEBOOK = "rnn_and_grad.ipynb"
REFERENCE = ROOT / "reference" / NOTEBOOK
SUBMISSIONS = ROOT / "examples" / "submissions"
SOURCE_NAME = f"reference/{NOTEBOOK}"

# A correct solution laid out differently from the reference: raw parameters created in another
# order, a different loop, an einsum readout, an explicit squared-error mean.
_ALT_LAYOUT = {
    "1.A init": """
        bound = 1.0 / hidden_size**0.5
        self.W_h = nn.Parameter(torch.empty(hidden_size, hidden_size).uniform_(-bound, bound))
        self.W_x = nn.Parameter(torch.empty(hidden_size, input_size).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(hidden_size).uniform_(-bound, bound))
    """,
    "1.A forward": """
        h = torch.zeros(x.shape[0], self.hidden_size, dtype=x.dtype)
        h_list = []
        for x_t in x.unbind(dim=1):
            h = self.nonlinearity(x_t @ self.W_x.T + h @ self.W_h.T + self.bias)
            h_list += [h]
    """,
    "1.B init": """
        hidden = self.recurrent_net.hidden_size
        self.b_f = nn.Parameter(torch.zeros(output_dim))
        self.W_f = nn.Parameter(torch.randn(output_dim, hidden) / hidden**0.5)
    """,
    "1.B forward": """
        all_h = self.recurrent_net(x)[0]
        out = torch.einsum("bth,oh->bto", all_h, self.W_f) + self.b_f
    """,
    "1.C loss": """
        if last_timestep_only:
            pred, y = pred[:, -1:], y[:, -1:]
        return ((pred - y) ** 2).mean()
    """,
    "1.D recurrent weight": """
        return layer.W_h
    """,
    "1.D scaling": """
        rnn.W_x.mul_(weight_scale)
        rnn.W_h.mul_(weight_scale)
        rnn.bias.mul_(bias_scale)
    """,
}

# The recurrence is dropped: every h_t is computed from x_t alone.
_NO_RECURRENCE = {
    "1.A forward": """
        h_list = []
        zeros = x.new_zeros(x.shape[0], self.hidden_size)
        for t in range(x.shape[1]):
            h_list.append(self.nonlinearity(self.linear(torch.cat([x[:, t], zeros], dim=1))))
    """,
}

# Right shape, wrong values: the readout is applied to the last hidden state only and the result
# repeated over time.
_WRONG_HEAD = {
    "1.B forward": """
        all_h, last_h = self.recurrent_net(x)
        out = self.readout(last_h).unsqueeze(1).expand(-1, x.shape[1], -1)
    """,
}

_SUM_NOT_MEAN = {
    "1.C loss": """
        if last_timestep_only:
            return ((pred[:, -1] - y[:, -1]) ** 2).sum()
        return ((pred - y) ** 2).sum()
    """,
}

# Flattens time into the features before the readout: a shape error for any sequence longer
# than one step ("mat1 and mat2 shapes cannot be multiplied").
_RAISES_IN_1B = {
    "1.B forward": """
        all_h, _ = self.recurrent_net(x)
        out = self.readout(all_h.reshape(all_h.shape[0], -1))
    """,
}

_HANGS_IN_1C = {
    "1.C loss": """
        while True:
            pass
    """,
}

# Returns the values the visible self-test expects, whatever the input (zeros for other sizes).
_CHEATS = {
    "1.A forward": """
        canned = {
            1: [[[0.1973753], [-0.0800906], [0.1410443], [0.3919521]]],
            3: [
                [[-0.2719306] * 3, [-0.2694921] * 3, [-0.1890714] * 3, [-0.0828469] * 3,
                 [0.0330287] * 3],
                [[0.1411564] * 3, [0.2623800] * 3, [0.3707051] * 3, [0.4667824] * 3,
                 [0.5504189] * 3],
            ],
        }
        if self.hidden_size in canned:
            values = torch.tensor(canned[self.hidden_size])
        else:
            values = torch.zeros(x.shape[0], x.shape[1], self.hidden_size)
        h_list = list(values.unbind(dim=1))
    """,
}

VARIANTS: dict[str, dict[str, str]] = {
    "full_marks_alt_layout": _ALT_LAYOUT,
    "fails_1a_no_recurrence": _NO_RECURRENCE,
    "fails_1b_wrong_head": _WRONG_HEAD,
    "fails_1c_sum_not_mean": _SUM_NOT_MEAN,
    "untouched_stub": {},
    "raises_in_1b": _RAISES_IN_1B,
    "hangs_in_1c": _HANGS_IN_1C,
    "cheats_visible_values": _CHEATS,
}

_TEMPLATE_VARIANTS = frozenset({"untouched_stub"})


def make_variant(
    reference_nb: nbformat.NotebookNode, name: str, *, source_name: str = SOURCE_NAME
) -> nbformat.NotebookNode:
    """The submission notebook of variant ``name`` (``reference_nb`` is not modified)."""
    if name not in VARIANTS:
        raise KeyError(f"unknown variant {name!r} (known: {', '.join(VARIANTS)})")
    if name in _TEMPLATE_VARIANTS:
        return make_template(reference_nb, source_name=source_name)
    return replace_blocks(
        reference_nb, source_name=source_name, replacements=VARIANTS[name]
    )


def main() -> None:
    reference_nb = read_notebook(REFERENCE)
    for name in VARIANTS:
        path = SUBMISSIONS / name / NOTEBOOK
        write_text_atomic(path, notebook_text(make_variant(reference_nb, name)))
        print(path.relative_to(ROOT))


if __name__ == "__main__":
    main()
