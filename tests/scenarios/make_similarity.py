"""Scenario class for the similarity report (rnn_and_grad), made from the reference notebook.

Each folder is named after what the report should say about it:

* ``independent_*``: eight correct solutions written independently, each its own way (a
  concatenation and one ``nn.Linear``, the same with ``[h, x]``, raw weight matrices, two linears, helper functions,
  einsum and a while loop, a ParameterDict, the reference's own code). Several share the short
  canonical answers of 1.B and 1.C (``nn.Linear(recurrent_net.hidden_size, output_dim)``,
  ``F.mse_loss(pred, y)``): no pair of them is similar.
* ``copy_renamed_reordered``: ``independent_helper_functions`` with every name the author chose
  renamed and its helper functions in another order (and another cell).
* ``copy_one_question``: 1.A copied from ``independent_split_weights``; 1.B to 1.D its own.
* ``copy_comments_whitespace``: ``independent_einsum`` with other comments, blank lines, spacing,
  line breaks and quotes, and one given line re-spaced.
* ``untouched_stub``: the student template: no code of its own, never in a pair.

Run ``python tests/scenarios/make_similarity.py`` to (re)write
``tests/scenarios/similarity/<scenario>/rnn_and_grad.ipynb``.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from grader.publish.template import (  # noqa: E402
    make_template,
    notebook_text,
    read_notebook,
    replace_blocks,
    write_text_atomic,
)

NOTEBOOK = "rnn_and_grad.ipynb"
REFERENCE = ROOT / "reference" / NOTEBOOK
OUT = Path(__file__).resolve().parent / "similarity"
SOURCE_NAME = f"reference/{NOTEBOOK}"

_CANONICAL_1B = {
    "1.B init": "self.readout = nn.Linear(recurrent_net.hidden_size, output_dim)",
    "1.B forward": """
        all_h, _ = self.recurrent_net(x)
        out = self.readout(all_h)
    """,
}
_CANONICAL_1C = {
    "1.C loss": """
        if last_timestep_only:
            return F.mse_loss(pred[:, -1], y[:, -1])
        return F.mse_loss(pred, y)
    """,
}
_SCALE_BY_NAME = {
    "1.D scaling": """
        for name, param in rnn.named_parameters():
            param.mul_(bias_scale if "bias" in name else weight_scale)
    """,
}

CONCAT_LINEAR = {
    "1.A init": "self.cell = nn.Linear(input_size + hidden_size, hidden_size)",
    "1.A forward": """
        n, steps, _ = x.shape
        state = torch.zeros(n, self.hidden_size)
        h_list = []
        for step in range(steps):
            joined = torch.cat((x[:, step, :], state), dim=-1)
            state = self.nonlinearity(self.cell(joined))
            h_list.append(state)
    """,
    **_CANONICAL_1B, **_CANONICAL_1C,
    "1.D recurrent weight": "return layer.cell.weight[:, layer.input_size:]",
    **_SCALE_BY_NAME,
}

CONCAT_TRANSPOSED = {
    "1.A init": "self.rnn_linear = nn.Linear(hidden_size + input_size, hidden_size)",
    "1.A forward": """
        h = torch.zeros(x.shape[0], self.hidden_size)
        h_list = []
        for x_t in x.transpose(0, 1):
            h = self.nonlinearity(self.rnn_linear(torch.cat([h, x_t], 1)))
            h_list.append(h)
    """,
    **_CANONICAL_1B,
    "1.C loss": """
        if last_timestep_only:
            return F.mse_loss(pred[:, -1, :], y[:, -1, :])
        return F.mse_loss(pred, y)
    """,
    "1.D recurrent weight": "return layer.rnn_linear.weight[:, :layer.hidden_size]",
    **_SCALE_BY_NAME,
}

SPLIT_WEIGHTS = {
    "1.A init": """
        scale = hidden_size ** -0.5
        self.W_x = nn.Parameter(scale * torch.randn(hidden_size, input_size))
        self.W_h = nn.Parameter(scale * torch.randn(hidden_size, hidden_size))
        self.b = nn.Parameter(torch.zeros(hidden_size))
    """,
    "1.A forward": """
        h = x.new_zeros(x.size(0), self.hidden_size)
        h_list = []
        for t in range(x.size(1)):
            pre = x[:, t] @ self.W_x.t() + h @ self.W_h.t() + self.b
            h = self.nonlinearity(pre)
            h_list.append(h)
    """,
    **_CANONICAL_1B, **_CANONICAL_1C,
    "1.D recurrent weight": "return layer.W_h",
    "1.D scaling": """
        rnn.W_x.mul_(weight_scale)
        rnn.W_h.mul_(weight_scale)
        rnn.b.mul_(bias_scale)
    """,
}

TWO_LINEARS = {
    "1.A init": """
        self.in2hid = nn.Linear(input_size, hidden_size)
        self.hid2hid = nn.Linear(hidden_size, hidden_size, bias=False)
    """,
    "1.A forward": """
        batch = x.shape[0]
        hidden = torch.zeros(batch, self.hidden_size, device=x.device)
        h_list = []
        for x_t in x.unbind(1):
            hidden = self.nonlinearity(self.in2hid(x_t) + self.hid2hid(hidden))
            h_list.append(hidden)
    """,
    "1.B init": "self.head = nn.Linear(self.recurrent_net.hidden_size, output_dim)",
    "1.B forward": """
        all_h = self.recurrent_net(x)[0]
        out = self.head(all_h)
    """,
    "1.C loss": """
        if last_timestep_only:
            pred, y = pred[:, -1], y[:, -1]
        return ((pred - y) ** 2).mean()
    """,
    "1.D recurrent weight": "return layer.hid2hid.weight",
    **_SCALE_BY_NAME,
}

# Helper functions in a new cell of their own, after the 1.A heading.
HELPERS_CELL = """
import math


def init_uniform(shape, fan_in):
    # PyTorch's default initialisation for recurrent weights.
    bound = 1.0 / math.sqrt(fan_in)
    return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))


def rnn_step(x_t, h_prev, weight_in, weight_rec, bias, activation):
    z = torch.addmm(bias, x_t, weight_in.T)
    z = z + h_prev.matmul(weight_rec.T)
    return activation(z)


def run_sequence(inputs, h0, step_fn):
    states = []
    h_cur = h0
    for position in range(inputs.shape[1]):
        h_cur = step_fn(inputs[:, position], h_cur)
        states.append(h_cur)
    return states
"""

HELPER_FUNCTIONS = {
    "1.A init": """
        self.weight_in = init_uniform((hidden_size, input_size), hidden_size)
        self.weight_rec = init_uniform((hidden_size, hidden_size), hidden_size)
        self.bias_all = init_uniform((hidden_size,), hidden_size)
    """,
    "1.A forward": """
        h0 = torch.zeros(x.shape[0], self.hidden_size, dtype=x.dtype)
        step = lambda inp, prev: rnn_step(inp, prev, self.weight_in, self.weight_rec,
                                          self.bias_all, self.nonlinearity)
        h_list = run_sequence(x, h0, step)
    """,
    "1.B init": "self.proj = nn.Linear(recurrent_net.hidden_size, output_dim)",
    "1.B forward": """
        all_h, _ = self.recurrent_net(x)
        out = self.proj(all_h)
    """,
    "1.C loss": """
        diff = pred - y
        if last_timestep_only:
            diff = diff[:, -1, :]
        return diff.pow(2).mean()
    """,
    "1.D recurrent weight": "return layer.weight_rec",
    "1.D scaling": """
        rnn.weight_in.mul_(weight_scale)
        rnn.weight_rec.mul_(weight_scale)
        rnn.bias_all.mul_(bias_scale)
    """,
}

# The same code, every name its author chose renamed, helpers in the reverse order.
RENAMED_HELPERS_CELL = """
import math


def unroll(seq, start, fn):
    outs = []
    cur = start
    for i in range(seq.shape[1]):
        cur = fn(seq[:, i], cur)
        outs.append(cur)
    return outs


def one_step(inp_t, prev_state, Wi, Wr, bb, act):
    acc = torch.addmm(bb, inp_t, Wi.T)
    acc = acc + prev_state.matmul(Wr.T)
    return act(acc)


def make_param(dims, n_in):
    limit = 1.0 / math.sqrt(n_in)
    return nn.Parameter(torch.empty(*dims).uniform_(-limit, limit))
"""

RENAMED_HELPERS = {
    "1.A init": """
        self.Wi = make_param((hidden_size, input_size), hidden_size)
        self.Wr = make_param((hidden_size, hidden_size), hidden_size)
        self.bb = make_param((hidden_size,), hidden_size)
    """,
    "1.A forward": """
        start = torch.zeros(x.shape[0], self.hidden_size, dtype=x.dtype)
        fn = lambda a, b: one_step(a, b, self.Wi, self.Wr,
                                   self.bb, self.nonlinearity)
        h_list = unroll(x, start, fn)
    """,
    "1.B init": "self.fc = nn.Linear(recurrent_net.hidden_size, output_dim)",
    "1.B forward": """
        all_h, _ = self.recurrent_net(x)
        out = self.fc(all_h)
    """,
    "1.C loss": """
        err = pred - y
        if last_timestep_only:
            err = err[:, -1, :]
        return err.pow(2).mean()
    """,
    "1.D recurrent weight": "return layer.Wr",
    "1.D scaling": """
        rnn.Wi.mul_(weight_scale)
        rnn.Wr.mul_(weight_scale)
        rnn.bb.mul_(bias_scale)
    """,
}

EINSUM = {
    "1.A init": """
        self.U = nn.Parameter(torch.randn(hidden_size, input_size) * 0.1)
        self.V = nn.Parameter(torch.randn(hidden_size, hidden_size) * 0.1)
        self.c = nn.Parameter(torch.zeros(hidden_size))
    """,
    "1.A forward": """
        B, T, _ = x.shape
        h_t = torch.zeros(B, self.hidden_size)
        h_list = []
        t = 0
        while t < T:
            a = torch.einsum("hi,bi->bh", self.U, x[:, t]) + torch.einsum("hk,bk->bh", self.V, h_t)
            h_t = self.nonlinearity(a + self.c)
            h_list.append(h_t)
            t += 1
    """,
    "1.B init": """
        self.W_out = nn.Parameter(torch.randn(output_dim, recurrent_net.hidden_size) * 0.1)
        self.b_out = nn.Parameter(torch.zeros(output_dim))
    """,
    "1.B forward": """
        all_h, _ = self.recurrent_net(x)
        out = torch.einsum("bth,oh->bto", all_h, self.W_out) + self.b_out
    """,
    "1.C loss": """
        if last_timestep_only:
            return torch.mean((pred[:, -1] - y[:, -1]) ** 2)
        return torch.mean((pred - y) ** 2)
    """,
    "1.D recurrent weight": "return layer.V",
    "1.D scaling": """
        rnn.U *= weight_scale
        rnn.V *= weight_scale
        rnn.c *= bias_scale
    """,
}

EINSUM_REFORMATTED = {
    "1.A init": """
        # input-to-hidden, hidden-to-hidden and the one bias

        self.U = nn.Parameter( torch.randn(hidden_size, input_size)*0.1 )
        self.V = nn.Parameter( torch.randn(hidden_size, hidden_size)*0.1 )   # recurrent
        self.c = nn.Parameter( torch.zeros(hidden_size) )
    """,
    "1.A forward": """
        B,T,_ = x.shape   # batch, time
        h_t = torch.zeros(B,
                          self.hidden_size)

        h_list = []
        t = 0
        while t<T:
            # W_x x_t + W_h h_{t-1}
            a = (torch.einsum('hi,bi->bh', self.U, x[:,t])
                 + torch.einsum('hk,bk->bh', self.V, h_t))
            h_t = self.nonlinearity( a+self.c )
            h_list.append( h_t )
            t+=1
    """,
    "1.B init": """
        self.W_out = nn.Parameter(torch.randn(output_dim,recurrent_net.hidden_size)*0.1)  # readout
        self.b_out = nn.Parameter(torch.zeros(output_dim))
    """,
    "1.B forward": """
        all_h,_ = self.recurrent_net(x)

        out = torch.einsum('bth,oh->bto',all_h,self.W_out)+self.b_out
    """,
    "1.C loss": """
        if last_timestep_only:   # only the final step counts
            return torch.mean( (pred[:,-1]-y[:,-1])**2 )
        return torch.mean( (pred-y)**2 )
    """,
    "1.D recurrent weight": "return layer.V  # W_h",
    "1.D scaling": """
        rnn.U *= weight_scale ; rnn.V *= weight_scale
        rnn.c *= bias_scale
    """,
}

PARAMETER_DICT = {
    "1.A init": """
        self.params = nn.ParameterDict({
            "wx": nn.Parameter(torch.randn(hidden_size, input_size) / input_size ** 0.5),
            "wh": nn.Parameter(torch.eye(hidden_size) * 0.5),
            "bias": nn.Parameter(torch.zeros(hidden_size)),
        })
    """,
    "1.A forward": """
        p = self.params
        h = torch.zeros(len(x), self.hidden_size)
        h_list = []
        for column in torch.split(x, 1, dim=1):
            h = self.nonlinearity(F.linear(column.squeeze(1), p["wx"]) + F.linear(h, p["wh"], p["bias"]))
            h_list += [h]
    """,
    **_CANONICAL_1B, **_CANONICAL_1C,
    "1.D recurrent weight": 'return layer.params["wh"]',
    **_SCALE_BY_NAME,
}

ONE_QUESTION_COPIED = {
    "1.A init": SPLIT_WEIGHTS["1.A init"],
    "1.A forward": SPLIT_WEIGHTS["1.A forward"],
    "1.B init": """
        hid = recurrent_net.hidden_size
        self.out_layer = nn.Sequential(nn.Linear(hid, output_dim))
    """,
    "1.B forward": """
        states, _ = self.recurrent_net(x)
        all_h = states
        out = self.out_layer(states)
    """,
    "1.C loss": """
        sq = (pred - y).square()
        return sq[:, -1].mean() if last_timestep_only else sq.mean()
    """,
    "1.D recurrent weight": "return layer.W_h.data",
    "1.D scaling": """
        for p_name, p in rnn.named_parameters():
            if p_name == "b":
                p.mul_(bias_scale)
            else:
                p.mul_(weight_scale)
    """,
}


def _with_cell(nb: nbformat.NotebookNode, source: str, *, after: str) -> nbformat.NotebookNode:
    """``nb`` with a new code cell after the first cell whose source starts with ``after``."""
    out = copy.deepcopy(nb)
    at = next(i for i, c in enumerate(out.cells) if c.source.startswith(after))
    cell = nbformat.v4.new_code_cell(source.strip("\n"))  # type: ignore[no-untyped-call]
    cell.id = "own-helpers"  # fixed, so the file is the same on every run
    out.cells.insert(at + 1, cell)
    return out


def _respace_given_line(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    out = copy.deepcopy(nb)
    for cell in out.cells:
        if cell.cell_type == "code":
            cell.source = cell.source.replace("all_h = torch.stack(h_list, dim=1)",
                                              "all_h = torch.stack( h_list, dim = 1 )")
    return out


def _clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def scenarios() -> dict[str, nbformat.NotebookNode]:
    ref = read_notebook(REFERENCE)

    def solved(code: dict[str, str]) -> nbformat.NotebookNode:
        return replace_blocks(ref, source_name=SOURCE_NAME, replacements=code)

    return {name: _clean(nb) for name, nb in {
        "independent_concat_linear": solved(CONCAT_LINEAR),
        "independent_concat_transposed": solved(CONCAT_TRANSPOSED),
        "independent_split_weights": solved(SPLIT_WEIGHTS),
        "independent_two_linears": solved(TWO_LINEARS),
        "independent_helper_functions": _with_cell(
            solved(HELPER_FUNCTIONS), HELPERS_CELL, after="## 1.A"),
        "independent_einsum": solved(EINSUM),
        "independent_parameter_dict": solved(PARAMETER_DICT),
        "independent_reference_style": solved({}),
        "copy_renamed_reordered": _with_cell(
            solved(RENAMED_HELPERS), RENAMED_HELPERS_CELL, after="class RNNLayer"),
        "copy_one_question": solved(ONE_QUESTION_COPIED),
        "copy_comments_whitespace": _respace_given_line(solved(EINSUM_REFORMATTED)),
        "untouched_stub": make_template(ref, source_name=SOURCE_NAME),
    }.items()}


COPIES = {  # copy -> the submission it copies
    "copy_renamed_reordered": "independent_helper_functions",
    "copy_one_question": "independent_split_weights",
    "copy_comments_whitespace": "independent_einsum",
}


def main() -> None:
    for name, nb in scenarios().items():
        path = OUT / name / NOTEBOOK
        write_text_atomic(path, notebook_text(nb))
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
