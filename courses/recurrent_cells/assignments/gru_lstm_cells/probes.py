"""Probes of gru_lstm_cells: the student's cells on seeded inputs and parameters.

The parameters are made here, from ``param_seed`` with a private generator, and passed to the
student's function as a dict: a check never depends on how, or in which order, a student would
create them, nor on the student's random state.
"""

import numpy as np
import torch

from grader.probelib import detached, need, tensor

GRU_GATES = ("z", "r", "h")
LSTM_GATES = ("i", "f", "o", "c")


def _params(seed, input_size, hidden_size, gates):
    g = torch.Generator().manual_seed(seed)
    p = {}
    for k in gates:
        p[f"W_{k}"] = (torch.randn(hidden_size, input_size, generator=g) * 0.5).requires_grad_()
        p[f"U_{k}"] = (torch.randn(hidden_size, hidden_size, generator=g) * 0.5).requires_grad_()
        p[f"b_{k}"] = (torch.randn(hidden_size, generator=g) * 0.1).requires_grad_()
    return p


def _grad(t):
    # A parameter the student's code never used has no gradient: report zeros, which then
    # differ from the expected gradient where it matters.
    return t.grad if t.grad is not None else torch.zeros_like(t)


def gru_step(ns, *, x, h, param_seed):
    x, h = tensor(x), tensor(h)
    p = _params(param_seed, x.shape[1], h.shape[1], GRU_GATES)
    out = need(ns, "gru_cell")(x, h, p)
    return {"h": detached(out), "shape": list(out.shape)}


def gru_gradients(ns, *, x, h, weights, param_seed):
    x, h = tensor(x, grad=True), tensor(h, grad=True)
    p = _params(param_seed, x.shape[1], h.shape[1], GRU_GATES)
    out = need(ns, "gru_cell")(x, h, p)
    (out * tensor(weights)).sum().backward()
    return {"dx": _grad(x), "dh": _grad(h), "dU_h": _grad(p["U_h"]), "db_z": _grad(p["b_z"]),
            "dW_r": _grad(p["W_r"])}


def _lstm(ns, x, h, c, param_seed):
    p = _params(param_seed, x.shape[1], h.shape[1], LSTM_GATES)
    result = need(ns, "lstm_cell")(x, h, c, p)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise TypeError(f"lstm_cell should return the pair (h_t, c_t), got "
                        f"{type(result).__name__}")
    return p, result[0], result[1]


def lstm_step(ns, *, x, h, c, param_seed):
    _, h_next, c_next = _lstm(ns, tensor(x), tensor(h), tensor(c), param_seed)
    return {"h": detached(h_next), "c": detached(c_next), "h_shape": list(h_next.shape),
            "c_shape": list(c_next.shape)}


def lstm_gradients(ns, *, x, h, c, weights_h, weights_c, param_seed):
    x, h, c = tensor(x, grad=True), tensor(h, grad=True), tensor(c, grad=True)
    p, h_next, c_next = _lstm(ns, x, h, c, param_seed)
    ((h_next * tensor(weights_h)).sum() + (c_next * tensor(weights_c)).sum()).backward()
    return {"dx": _grad(x), "dh": _grad(h), "dc": _grad(c), "dU_f": _grad(p["U_f"]),
            "db_o": _grad(p["b_o"]), "dW_c": _grad(p["W_c"])}


def predict_held_out(ns, *, examples):
    """The notebook's trained classifier on sequences whose labels stay with the grader."""
    model, predict = need(ns, "model"), need(ns, "predict")
    got = predict(model, np.asarray(examples, dtype=np.float32))
    return {"predictions": np.asarray(detached(got)).astype(np.int64),
            "categories": [str(c) for c in need(ns, "classes")]}
