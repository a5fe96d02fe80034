"""Helpers for assignment probes. Runs inside the sandbox, imported before Landlock is on.

Probes are instructor code that calls the student's code. They may use only what is here plus
torch and numpy; they return dicts of tensors, arrays and numbers, which ``wire`` encodes.
"""

from __future__ import annotations

import traceback
from typing import Any, Callable

import numpy as np
import torch

NONLINEARITIES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "identity": lambda z: z,
}


class NotDefined(Exception):
    """The notebook did not define a name a probe needs."""


def need(ns: dict[str, Any], name: str) -> Any:
    if name not in ns:
        raise NotDefined(f"{name} is not defined")
    return ns[name]


def tensor(value: Any, *, grad: bool = False) -> torch.Tensor:
    t = torch.tensor(np.asarray(value))
    if t.is_floating_point():
        t = t.to(torch.float32)
    return t.requires_grad_(grad)


def fill_(module: torch.nn.Module, value: float) -> torch.nn.Module:
    """Set every parameter and buffer to ``value``, the way the course's tests do.

    Goes through ``state_dict`` so the result does not depend on how a student laid out
    parameters or in which order modules were created.
    """
    state = module.state_dict()
    module.load_state_dict({k: v * 0 + value for k, v in state.items()})
    return module


def count_parameters(module: torch.nn.Module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def safe_str(value: object, limit: int = 2000) -> str:
    try:
        text = str(value)
    except BaseException:
        text = f"<{type(value).__name__} whose str() failed>"
    return text[:limit]


def describe_failure(exc: BaseException) -> dict[str, str]:
    if isinstance(exc, NotImplementedError):
        kind = "not_implemented"
    elif isinstance(exc, NotDefined):
        kind = "not_defined"
    else:
        kind = "error"
    try:
        frames = traceback.format_exception(type(exc), exc, exc.__traceback__)
        text = "".join(f for f in frames if "grader/" not in f)[-3000:]
    except BaseException:
        text = ""
    return {"kind": kind, "ename": type(exc).__name__, "evalue": safe_str(exc), "traceback": text}
