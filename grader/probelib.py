"""Helpers for assignment probes. Runs inside the sandbox, imported before Landlock is on.

Probes are instructor code that calls the student's code. They may use only what is here plus
torch and numpy; they return dicts of tensors, arrays and numbers, which ``wire`` encodes.
"""

from __future__ import annotations

import re
import sys
import traceback
from typing import Any, Sequence

import numpy as np
import torch


class NotDefined(Exception):
    """The notebook did not define a name a probe needs."""


class NotImplementedYet(Exception):
    """A probe found the student's code unwritten though it raised nothing (a model whose
    ``__init__`` creates no parameter): scored as "not implemented yet", with no hint."""


def need(ns: dict[str, Any], name: str) -> Any:
    if name not in ns:
        raise NotDefined(f"{name} is not defined")
    return ns[name]


def tensor(value: Any, *, grad: bool = False) -> torch.Tensor:
    t = torch.tensor(np.asarray(value))
    if t.is_floating_point():
        t = t.to(torch.float32)
    return t.requires_grad_(grad)


def detached(value: Any) -> Any:
    """A tensor the student's code returned, cut from autograd (as a notebook prints it)."""
    return value.detach() if isinstance(value, torch.Tensor) else value


def fill_(module: torch.nn.Module, value: float) -> torch.nn.Module:
    """Set every parameter and buffer to ``value``, the way course self-tests often do.

    Goes through ``state_dict`` so the result does not depend on how a student laid out
    parameters or in which order modules were created.
    """
    state = module.state_dict()
    module.load_state_dict({k: v * 0 + value for k, v in state.items()})
    return module


def count_parameters(module: torch.nn.Module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def built(module: Any, what: str, *, besides: torch.nn.Module | None = None) -> Any:
    """``module``, once it has parameters of its own (more than ``besides``, a part the probe
    passed in); else ``NotImplementedYet``: an ``__init__`` whose body is still only comments
    builds an empty model, and every later error would be about something else."""
    if isinstance(module, torch.nn.Module):
        own = count_parameters(module) - (count_parameters(besides) if besides is not None else 0)
        if own <= 0:
            raise NotImplementedYet(f"{what} has no parameters: its __init__ creates no layer yet")
    return module


def describe_value(value: Any) -> str:
    """An argument as a call description shows it: arrays by their shape, small values as is."""
    shape = getattr(value, "shape", None)
    if shape is not None and not isinstance(value, (int, float, bool)):
        return str(tuple(int(n) for n in shape))
    return safe_str(repr(value), 60)


def describe_call(name: str, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None,
                  *, names: Sequence[str] = ()) -> str:
    """``loss_fn(pred: (2, 3, 1), y: (2, 3, 1), last_timestep_only=False)``: what the probe
    passed, arrays by name and shape (``names`` name the positional ones)."""
    parts = []
    for i, value in enumerate(args):
        label = names[i] if i < len(names) else ""
        shown = describe_value(value)
        parts.append(f"{label}: {shown}" if label and hasattr(value, "shape") else
                     f"{label}={shown}" if label else shown)
    for key, value in (kwargs or {}).items():
        parts.append(f"{key}: {describe_value(value)}" if hasattr(value, "shape")
                     else f"{key}={describe_value(value)}")
    return f"{name}({', '.join(parts)})"


def call(fn: Any, name: str, *args: Any, names: Sequence[str] = (), **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``; an exception from it carries the call's description
    (``describe_call``), so the student reads which call failed and on which shapes."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        try:
            exc.__dict__.setdefault("_grader_call", describe_call(name, args, kwargs, names=names))
        except (AttributeError, TypeError):  # an exception without a __dict__
            pass
        raise


def safe_str(value: object, limit: int = 2000) -> str:
    try:
        text = str(value)
    except BaseException:
        text = f"<{type(value).__name__} whose str() failed>"
    return text[:limit]


_CELL_FILE = re.compile(r"<ipython-input-(\d+)-[0-9a-f]+>")


def _where(filename: str) -> str:
    """A frame's file as a student can place it: their code cell, or a library's own path."""
    match = _CELL_FILE.fullmatch(filename)
    if match:
        return f"code cell {match.group(1)}"
    for marker in ("site-packages/", "dist-packages/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    for prefix in {sys.prefix, sys.base_prefix}:
        if filename.startswith(prefix):
            return filename[len(prefix):].lstrip("/").split("/", 2)[-1]
    return filename


def student_traceback(exc: BaseException) -> str:
    """The student's own frames (their code cells) and the library frame that raised.

    The grader's, IPython's and the probes' frames are left out, and so is every path of the
    grading machine: they tell a student nothing and reveal the grader's layout."""
    frames = traceback.extract_tb(exc.__traceback__)
    kept = [f for f in frames if _CELL_FILE.fullmatch(f.filename)]
    last = frames[-1] if frames else None
    if last is not None and last not in kept and last.filename != "<probes>" \
            and "grader/" not in last.filename:
        kept.append(last)
    lines = ["Traceback (most recent call last):\n"]
    for frame in kept:
        lines.append(f"  {_where(frame.filename)}, line {frame.lineno}, in {frame.name}\n")
        if frame.line:
            lines.append(f"    {frame.line.strip()}\n")
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines)


def _student_function(exc: BaseException) -> str:
    """The student's function the error came out of ("" when it was at a cell's top level)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _CELL_FILE.fullmatch(f.filename)]
    return frames[-1].name if frames and frames[-1].name != "<module>" else ""


def _looks_like_stub(exc: BaseException, stub_messages: Sequence[str]) -> bool:
    """An untouched stub: its function leaves the result unset or *returns*
    ``NotImplementedError()``, so the error comes later, with a message about something
    else. What that message is depends on the stub, so an assignment's probes module lists
    its own (``STUB_MESSAGES``) beside these rules, which hold for any stub."""
    text = safe_str(exc, 500)
    if "NotImplementedError" in text or any(m in text for m in stub_messages):
        return True
    if isinstance(exc, AttributeError) and _student_function(exc) and _MISSING_SELF_ATTRIBUTE.match(text):
        # A method reads an attribute its own __init__ never set: that part is still to write.
        return True
    return isinstance(exc, NameError) and bool(_student_function(exc))


_MISSING_SELF_ATTRIBUTE = re.compile(r"'\w+' object has no attribute '\w+'$")


def declared_stub_messages(probes: object) -> tuple[str, ...]:
    """A probes module's ``STUB_MESSAGES`` (a tuple of error texts), read defensively: a lone
    string would otherwise match by its characters, and a malformed value must not turn a
    student's error into a grader's crash."""
    declared = getattr(probes, "STUB_MESSAGES", ())
    if isinstance(declared, str):
        declared = (declared,)
    if not isinstance(declared, (tuple, list)):
        return ()
    return tuple(m for m in declared if isinstance(m, str) and m)


def describe_failure(exc: BaseException, *, stub_messages: Sequence[str] = ()) -> dict[str, str]:
    """``exc`` as a probe's or a cell's error; ``stub_messages``: the probes module's
    ``STUB_MESSAGES``, texts of errors that mean the student's code is still the stub."""
    if isinstance(exc, NotImplementedError):
        kind = "not_implemented"
    elif isinstance(exc, NotImplementedYet):
        kind = "not_implemented_yet"
    elif isinstance(exc, NotDefined):
        kind = "not_defined"
    elif _looks_like_stub(exc, stub_messages):
        kind = "stub"
    else:
        kind = "error"
    try:
        text = student_traceback(exc)[-3000:]
    except BaseException:
        text = ""
    described = {"kind": kind, "ename": type(exc).__name__, "evalue": safe_str(exc),
                 "traceback": text, "function": _student_function(exc)}
    made = getattr(exc, "__dict__", {}).get("_grader_call")
    if isinstance(made, str):  # set by ``call`` in the probe's process, never by the student
        described["call"] = safe_str(made, 300)
    return described
