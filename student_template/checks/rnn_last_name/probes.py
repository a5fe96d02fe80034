"""Probes for the last-name classifier: unit checks on fixed inputs, then held-out predictions.

Runs inside the sandbox. Parameters are set by name (the modules' names are part of the
assignment: embedding, rnn/lstm, drop, output), never by creation order.

Student code is called the way the course's own self-tests call it: autograd on, default dtype,
the model in the mode it was constructed in (training); results are detached only once the
student's code has returned. Two generations of the notebook are accepted: the course's
(``build_batch`` over ``build_data`` rows padded with ``pad``, the trained net in ``rnn_model``,
its history in ``rnn_log``) and ours before it (``names_to_batch``, ``model``, ``history`` and
``hparams``). The course's stubs do not raise: they assign or return ``NotImplementedError()``,
so a probe that finds one says so instead of failing on it later.
"""

import inspect
import zlib

import numpy as np
import torch
from torch import nn

from grader.probelib import need, tensor

VOCAB_SIZE = 58
PAD = 57
ROW_LENGTH = 19  # the course's build_data pads every name to 19 letters


def _stub(what):
    """The error for a course stub found by a probe (grade reads it as "not implemented yet")."""
    return TypeError(what)


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
    # Positional, as the course's self-test calls it: RecurrentClassifier(11, 13, 17, 2, 0.1, 'rnn').
    model = cls(VOCAB_SIZE, rnn_size, n_categories, num_layers, 0.0, model_type)
    for attr in ("embedding", model_type, "drop", "output"):  # self.rnn or self.lstm
        if isinstance(getattr(model, attr, None), NotImplementedError):
            raise _stub(f"RecurrentClassifier sets self.{attr} = NotImplementedError()")
    return model


def _detached(grads):
    return {k: (p.grad.detach() if p.grad is not None else torch.zeros_like(p.detach()))
            for k, p in grads}


def letter_to_index(ns, *, letters):
    f = need(ns, "letterToIndex")
    out = []
    for c in letters:
        index = f(c)
        if isinstance(index, NotImplementedError):
            raise _stub(f"letterToIndex({c!r}) returned NotImplementedError()")
        out.append(int(index))
    return {"indices": np.array(out, dtype=np.int64)}


def parameter_names(ns, *, model_type, rnn_size, n_categories, num_layers=1):
    model = _model(ns, model_type, rnn_size, n_categories, num_layers)
    return {"parameters": [f"{k} {tuple(v.shape)}" for k, v in sorted(model.state_dict().items())]}


def _logits(model, x, last_pos):
    logits = model(x, last_pos)
    if isinstance(logits, NotImplementedError):
        raise _stub("RecurrentClassifier.forward returned NotImplementedError()")
    return logits


def logits_and_gradients(ns, *, model_type, rnn_size, n_categories, x, last_pos, targets,
                         num_layers=1):
    model = _pattern_(_model(ns, model_type, rnn_size, n_categories, num_layers))
    logits = _logits(model, tensor(x), tensor(last_pos))
    nn.functional.cross_entropy(logits, tensor(targets)).backward()
    return {"logits": logits.detach(), "gradients": _detached(sorted(model.named_parameters()))}


def padding_invariance(ns, *, model_type, rnn_size, n_categories, x, last_pos, extra):
    """Largest change of any logit when the batch is padded with ``extra`` more columns."""
    model = _pattern_(_model(ns, model_type, rnn_size, n_categories))
    xt, lp = tensor(x), tensor(last_pos)
    padded = torch.cat([xt, torch.full((xt.shape[0], extra), PAD)], dim=1)
    change = (_logits(model, padded, lp) - _logits(model, xt, lp)).abs().max()
    return {"max_change": change.detach()}


def _trained(ns):
    """The trained network: the course keeps it in rnn_model (``model`` is set in its last cell)."""
    return ns["rnn_model"] if "rnn_model" in ns else need(ns, "model")


def _course_batches(ns, names, size):
    """Batches made as the course makes them: build_data-style rows through build_batch."""
    build_batch = ns["build_batch"]
    letter_to_index = need(ns, "letterToIndex")
    pad = ns.get("pad", PAD)
    width = max([ROW_LENGTH] + [len(n) for n in names])
    rows = []
    for name in names:
        letters = [letter_to_index(c) for c in name]
        if any(isinstance(i, NotImplementedError) for i in letters):
            raise _stub("letterToIndex returned NotImplementedError()")  # no held-out letter
        row = np.full(width, pad, dtype=np.int64)
        row[: len(name)] = letters
        rows.append((row, 0, len(name) - 1))
    for start in range(0, len(rows), size):
        batch_input, _, batch_indices = build_batch(rows, list(range(start, min(start + size, len(rows)))))
        yield torch.tensor(np.asarray(batch_input)).long(), torch.tensor(np.asarray(batch_indices)).long()


def _own_batches(ns, names, size):
    names_to_batch = need(ns, "names_to_batch")
    for start in range(0, len(names), size):
        yield names_to_batch(names[start:start + size])


def _categories(ns):
    """Label number -> language, as the notebook's labels were made."""
    num_to_cat = ns.get("num_to_cat")
    if isinstance(num_to_cat, dict) and num_to_cat:
        return [str(num_to_cat[i]) for i in range(len(num_to_cat))]
    return [str(c) for c in need(ns, "all_categories")]


MAX_WEIGHTS = 50_000_000  # numbers in the trained state_dict: 200 MB of float32, 16x the course's


def _weights_only(model):
    """The trained network's ``state_dict`` as plain CPU tensors (a copy through numpy: no
    subclass, no hook, no attribute survives), or TypeError when it is not that or too big."""
    state = model.state_dict()
    if not isinstance(state, dict):
        raise TypeError("the trained model's state_dict() is not a dict")
    plain, total = {}, 0
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise TypeError(f"the trained model's state_dict() holds {type(value).__name__} "
                            f"under {key!r}: expected tensors only")
        total += value.numel()
        if total > MAX_WEIGHTS:
            raise TypeError(f"the trained model has more than {MAX_WEIGHTS} weights")
        plain[key] = torch.from_numpy(np.array(value.detach().cpu().numpy(), copy=True))
    return plain


def _fresh(ns, model):
    """A new instance of the notebook's own RecurrentClassifier holding only the trained
    weights: whatever the trained object carries besides them (a wrapper, a patched forward, a
    table of names) is not in it. Sizes, layers and type are read from the weights."""
    state = _weights_only(model)
    model_type = "lstm" if any(k.startswith("lstm.") for k in state) else "rnn"
    embedding, output = state.get("embedding.weight"), state.get("output.weight")
    if embedding is None or output is None or embedding.dim() != 2 or output.dim() != 2:
        raise TypeError("the trained model has no embedding.weight or output.weight "
                        "(is it the notebook's RecurrentClassifier?)")
    layers = sum(1 for k in state if k.startswith(f"{model_type}.weight_ih_l")
                 and not k.endswith("_reverse"))
    fresh = _model(ns, model_type, int(embedding.shape[1]), int(output.shape[0]), max(1, layers))
    if fresh.embedding.weight.shape != embedding.shape:  # another vocabulary than the course's
        fresh = need(ns, "RecurrentClassifier")(int(embedding.shape[0]), int(embedding.shape[1]),
                                                int(output.shape[0]), max(1, layers), 0.0,
                                                model_type)
    fresh.load_state_dict(state, strict=True)
    return fresh


def predict(ns, *, names):
    """The trained network's predictions for names whose labels stay with the grader.

    Made by a fresh instance of the notebook's RecurrentClassifier loaded with the trained
    weights only (``_fresh``), in eval mode (the course's last cell puts it there); autograd
    stays on, as in the course's classify_name."""
    categories = _categories(ns)
    # Batches first: an unimplemented letterToIndex is the first thing a stub reports.
    batches = list((_course_batches if "build_batch" in ns else _own_batches)(ns, names, 512))
    model = _fresh(ns, _trained(ns))
    model.eval()
    out = []
    for x, last_pos in batches:
        out.append(_logits(model, x.cpu(), last_pos.cpu()).detach().argmax(dim=1).cpu())
    predictions = torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)
    return {"predictions": predictions.to(torch.int64), "categories": categories}


def _plain(value):
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)


def course_log(ns):
    """What the notebook recorded about its training (informational, never scored).

    The course's rnn_log also holds the student's own last name; that stays out of the log."""
    cls = need(ns, "RecurrentClassifier")
    model = _trained(ns)
    if "rnn_log" in ns:
        log = need(ns, "rnn_log")
        history, hparams = log.get("history", {}), log.get("hparams", {})
    else:
        history, hparams = need(ns, "history"), need(ns, "hparams")
    source = {}
    for method in ("__init__", "forward"):
        try:
            source[method] = inspect.getsource(getattr(cls, method))
        except (OSError, TypeError):
            source[method] = "unavailable"
    return {
        "history": {str(k): [float(v) for v in values] for k, values in history.items()
                    if isinstance(values, (list, tuple))},
        "hparams": {str(k): _plain(v) for k, v in hparams.items()},
        "parameters": {k: list(v.shape) for k, v in model.state_dict().items()},
        "source": source,
    }
