"""Probes for the last-name classifier: unit checks on fixed inputs, then held-out predictions.

Runs inside the sandbox. Parameters are set by name (the modules' names are part of the
assignment: embedding, rnn/lstm, drop, output), never by creation order.
"""

import inspect
import zlib

import numpy as np
import torch
from torch import nn

from grader.probelib import need, tensor

VOCAB_SIZE = 58


def _pattern_(model):
    """Known, non-constant values keyed by parameter name: independent of creation order."""
    state = model.state_dict()
    filled = {}
    for name, value in state.items():
        phase = zlib.crc32(name.encode()) % 997
        idx = torch.arange(value.numel(), dtype=torch.float64)
        filled[name] = (0.3 * torch.sin(0.7 * idx + phase)).reshape(value.shape).to(value.dtype)
    model.load_state_dict(filled)
    return model


def _model(ns, model_type, rnn_size, n_categories, num_layers=1):
    cls = need(ns, "RecurrentClassifier")
    return cls(VOCAB_SIZE, rnn_size, n_categories, num_layers=num_layers, dropout=0.0,
               model_type=model_type)


def letter_to_index(ns, *, letters):
    f = need(ns, "letterToIndex")
    return {"indices": np.array([int(f(c)) for c in letters], dtype=np.int64)}


def parameter_names(ns, *, model_type, rnn_size, n_categories, num_layers=1):
    model = _model(ns, model_type, rnn_size, n_categories, num_layers)
    return {"parameters": [f"{k} {tuple(v.shape)}" for k, v in sorted(model.state_dict().items())]}


def logits_and_gradients(ns, *, model_type, rnn_size, n_categories, x, last_pos, targets):
    model = _pattern_(_model(ns, model_type, rnn_size, n_categories)).eval()
    logits = model(tensor(x), tensor(last_pos))
    nn.functional.cross_entropy(logits, tensor(targets)).backward()
    grads = {k: (p.grad if p.grad is not None else torch.zeros_like(p))
             for k, p in sorted(model.named_parameters())}
    return {"logits": logits, "gradients": grads}


def padding_invariance(ns, *, model_type, rnn_size, n_categories, x, last_pos, extra):
    """Largest change of any logit when the batch is padded with ``extra`` more columns."""
    model = _pattern_(_model(ns, model_type, rnn_size, n_categories)).eval()
    xt, lp = tensor(x), tensor(last_pos)
    padded = torch.cat([xt, torch.full((xt.shape[0], extra), VOCAB_SIZE - 1)], dim=1)
    with torch.no_grad():
        change = (model(padded, lp) - model(xt, lp)).abs().max()
    return {"max_change": change}


def predict(ns, *, names):
    """The trained ``model``'s predictions for names whose labels stay with the grader."""
    model = need(ns, "model")
    names_to_batch = need(ns, "names_to_batch")
    categories = [str(c) for c in need(ns, "all_categories")]
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(names), 512):
            x, last_pos = names_to_batch(names[start:start + 512])
            out.append(model(x, last_pos).argmax(dim=1))
    predictions = torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)
    return {"predictions": predictions.to(torch.int64), "categories": categories}


def course_log(ns):
    """What the course's notebook wrote into its own submission_log.json (informational)."""
    cls = need(ns, "RecurrentClassifier")
    model = need(ns, "model")
    source = {}
    for method in ("__init__", "forward"):
        try:
            source[method] = inspect.getsource(getattr(cls, method))
        except (OSError, TypeError):
            source[method] = "unavailable"
    history = need(ns, "history")
    return {
        "history": {k: [float(v) for v in history.get(k, [])]
                    for k in ("train_losses", "train_accs", "val_accs")},
        "hparams": {str(k): v if isinstance(v, (int, float, str, bool)) else str(v)
                    for k, v in need(ns, "hparams").items()},
        "parameters": {k: list(v.shape) for k, v in model.state_dict().items()},
        "source": source,
    }
