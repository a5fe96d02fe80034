"""Probes for the RNN homework: they call the student's code on inputs the grader chose.

Runs inside the sandbox. Every parameter is set through ``fill_`` (the course's
``load_state_dict({k: v * 0 + c})``), so a check never depends on how a student laid out
parameters. 1.B is probed with a stand-in recurrent net, so a bug in 1.A costs 1.A's points only.

Student code is called exactly as the course's own self-tests call it: autograd on, default
dtype, modules as constructed. The course's given ``store_h_for_grad`` calls ``h.retain_grad()``
on every hidden state, which raises under ``torch.no_grad()``; so nothing here turns grad off,
and outputs are detached only once the student's code has returned.
"""

import torch
from torch import nn

from grader.probelib import built, call, count_parameters, detached, fill_, need, tensor

# The course's 1.A stub appends nothing to h_list, so torch.stack fails later with this
# message, about something else than the stub itself (grader.probelib.describe_failure).
STUB_MESSAGES = ("stack expects a non-empty TensorList",)

# The YAML names a nonlinearity; the course's RNNLayer takes the function.
NONLINEARITIES = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "identity": lambda z: z,
}


def _rnn(ns, input_size, hidden_size, nonlinearity="tanh"):
    layer_class = need(ns, "RNNLayer")
    layer = layer_class(input_size, hidden_size, nonlinearity=NONLINEARITIES[nonlinearity])
    return built(layer, f"RNNLayer({input_size}, {hidden_size})")


def rnn_parameter_count(ns, *, input_size, hidden_size):
    return {"count": count_parameters(_rnn(ns, input_size, hidden_size))}


def rnn_forward(ns, *, input_size, hidden_size, nonlinearity, fill, x):
    layer = fill_(_rnn(ns, input_size, hidden_size, nonlinearity), fill)
    all_h, last_h = call(layer, "RNNLayer.forward", tensor(x), names=("x",))
    return {"all_h": detached(all_h), "last_h": detached(last_h)}


def rnn_input_gradient(ns, *, input_size, hidden_size, nonlinearity, fill, x, weights):
    """d(sum(w * all_h))/dx, plus the gradients kept by store_h_for_grad (1.D relies on them)."""
    layer = fill_(_rnn(ns, input_size, hidden_size, nonlinearity), fill)
    xt = tensor(x, grad=True)
    all_h, _ = call(layer, "RNNLayer.forward", xt, names=("x",))
    (all_h * tensor(weights)).sum().backward()
    h_list = getattr(layer, "h_list", None)
    if h_list is None:
        raise AttributeError("RNNLayer.forward did not call self.store_h_for_grad(h_list)")
    h_grads = torch.stack([h.grad if h.grad is not None else torch.full_like(h, float("nan"))
                           for h in h_list], dim=1)
    return {"x_grad": xt.grad, "h_grads": h_grads}


class _StandIn(nn.Module):
    """A recurrent net that is not an RNN answer: a leaky running sum of a projection of x."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.proj = nn.Linear(input_size, hidden_size)
        self.mix = nn.Parameter(torch.zeros(hidden_size, hidden_size))

    def forward(self, x):
        z = self.proj(x)
        steps, h = [], torch.zeros(x.shape[0], self.hidden_size)
        for t in range(x.shape[1]):
            h = 0.5 * h + z[:, t] + 0.1 * torch.sin(h @ self.mix)
            steps.append(h)
        all_h = torch.stack(steps, dim=1)
        return all_h, all_h[:, -1]


def regression_parameter_count(ns, *, input_size, hidden_size, output_dim):
    net = _StandIn(input_size, hidden_size)
    model = need(ns, "RecurrentRegressionModel")(net, output_dim)
    built(model, f"RecurrentRegressionModel(net, {output_dim})", besides=net)
    return {"count": count_parameters(model)}


def regression_forward(ns, *, input_size, hidden_size, output_dim, fill_net, fill_head, x):
    net = _StandIn(input_size, hidden_size)
    model = need(ns, "RecurrentRegressionModel")(net, output_dim)
    built(model, f"RecurrentRegressionModel(net, {output_dim})", besides=net)
    fill_(model, fill_head)
    fill_(net, fill_net)
    out, all_h = call(model, "RecurrentRegressionModel.forward", tensor(x), names=("x",))
    return {"out": detached(out), "all_h": detached(all_h)}


def loss(ns, *, pred, y, last_timestep_only):
    loss_fn = need(ns, "loss_fn")
    p = tensor(pred, grad=True)
    value = call(loss_fn, "loss_fn", p, tensor(y), names=("pred", "y"),
                 last_timestep_only=last_timestep_only)
    if not isinstance(value, torch.Tensor) or value.dim() != 0:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise TypeError(f"loss_fn must return a scalar tensor, got {shape}")
    value.backward()
    return {"loss": value, "pred_grad": p.grad}
