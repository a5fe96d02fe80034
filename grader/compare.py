"""Compare a submission's value with the expected one and explain any difference.

The report imitates pytest's ``approx``: a one-line summary, the worst differences, and a short
table of mismatching elements.  Both sides are first reduced to plain data by ``to_plain`` so that
no user-defined ``__eq__``, ``__array__`` or ``__torch_function__`` is ever consulted.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Comparison", "compare", "to_plain"]

# Kinds we compare with a tolerance; everything else is either exact (strings) or refused.
_NUMERIC_KINDS = "biufc"
_TEXT_KINDS = "US"
# np.longdouble.item() stays a numpy scalar, hence the explicit conversion after item().
_NUMPY_SCALARS: tuple[tuple[type[Any], Any], ...] = (
    (np.bool_, bool), (np.integer, int), (np.floating, float), (np.complexfloating, complex),
    (np.str_, str),
)


@dataclass(frozen=True)
class Comparison:
    passed: bool
    message: str
    max_abs: float | None
    max_rel: float | None
    where: tuple[int, ...] | None


class _Unconvertible(TypeError):
    """Carries the innermost offending type, which is more useful to a student than 'list'."""

    def __init__(self, type_name: str) -> None:
        super().__init__(f"cannot convert an object of type {type_name} to plain data")
        self.type_name = type_name


class _BadExpected(ValueError):
    """Raised for problems in ``expected``: those are grader bugs and must not be swallowed."""


def _type_name(value: object) -> str:
    try:
        return str(type(value).__qualname__)
    except Exception:  # a hostile metaclass can make even this raise
        return "<unknown>"


def _torch_to_numpy(value: Any) -> npt.NDArray[Any]:
    import torch  # lazy: the grader must work without torch installed

    # Calling the base-class methods with subclass dispatch disabled means a Tensor subclass cannot
    # substitute other data through an overridden detach()/numpy() or __torch_function__.
    with torch._C.DisableTorchFunctionSubclass():
        t = torch.Tensor.detach(value)
        if t.dtype == torch.bfloat16:  # numpy has no bfloat16
            t = t.to(torch.float32)
        out: npt.NDArray[Any] = torch.Tensor.numpy(t, force=True)
    return np.array(out, copy=True).view(np.ndarray)


def _is_torch_tensor(value: object) -> bool:
    cls = type(value)
    if cls.__module__.startswith("torch") and hasattr(value, "detach"):
        return True
    # Subclasses defined in a notebook live in __main__; if torch was never imported none can exist.
    torch = sys.modules.get("torch")
    return torch is not None and issubclass(cls, torch.Tensor)


def to_plain(value: object) -> object:
    """Reduce ``value`` to plain Python/numpy data, raising TypeError for anything else."""
    v: Any = value
    cls = type(v)
    if v is None or cls in (bool, int, float, complex, str):
        return v
    if issubclass(cls, np.ndarray):
        # np.array with subok=False copies the buffer itself and never calls the subclass's hooks.
        return np.array(v, copy=True).view(np.ndarray)
    # numpy scalars must be tested before float/int (np.float64 subclasses float), and read through
    # the unbound C-level np.generic.item so a Python subclass cannot override what we see.
    if issubclass(cls, np.generic):
        for base, convert in _NUMPY_SCALARS:
            if issubclass(cls, base):
                return convert(np.generic.item(v))
        raise _Unconvertible(_type_name(v))
    if _is_torch_tensor(v):
        return _torch_to_numpy(v)
    # Unbound base-class slots give the exact built-in value even if a subclass overrides
    # __int__/__float__/__str__ to lie (plain float(x) would trust the override).
    if issubclass(cls, int):
        return int.__int__(v)
    if issubclass(cls, float):
        return float.__float__(v)
    if issubclass(cls, complex):  # complex.__complex__ is 3.11+; the descriptors work on 3.10
        real, imag = complex.real.__get__(v), complex.imag.__get__(v)
        return complex(real, imag)
    if issubclass(cls, str):
        return str.__str__(v)
    if issubclass(cls, (list, tuple)):
        items = list.__iter__(v) if issubclass(cls, list) else tuple.__iter__(v)
        return [to_plain(item) for item in items]
    if issubclass(cls, dict):
        plain: dict[str, object] = {}
        for key, item in dict.items(v):
            if not issubclass(type(key), str):
                raise _Unconvertible(f"dict (with a key of type {_type_name(key)})")
            plain[str.__str__(key)] = to_plain(item)
        return plain
    raise _Unconvertible(_type_name(v))


def _fmt(x: object) -> str:
    if isinstance(x, (bool, str)):
        return repr(x)
    return format(x, ".6g")


def _short_repr(x: object, limit: int = 60) -> str:
    text = repr(x)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _dtype_label(dtype: np.dtype[Any]) -> str:
    # Numeric dtypes read best by name ("float32"); for text the size matters, so use the array
    # protocol string ("<U5"), which is also what numpy prints.
    return dtype.str if dtype.kind in _TEXT_KINDS else dtype.name


def _plural(n: int, word: str, suffix: str = "s") -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}{suffix}"


def _describe(value: object) -> str:
    if value is None:
        return "None"
    if isinstance(value, np.ndarray):
        return f"a {_dtype_label(value.dtype)} array of shape {value.shape}"
    if isinstance(value, list):
        return f"a list of {_plural(len(value), 'item')}"
    if isinstance(value, dict):
        return f"a dict with {_plural(len(value), 'key')}"
    described = {bool: "a bool", int: "an int", float: "a float", complex: "a complex number",
                 str: "a str"}
    return described.get(type(value), f"an object of type {_type_name(value)}")


def _is_number(value: object) -> bool:
    return type(value) in (bool, int, float, complex)


def _scalar_array(value: object) -> npt.NDArray[Any]:
    if type(value) is int and not -(2**63) <= value < 2**64:
        # Beyond 64 bits numpy would fall back to an object array; a float keeps it numeric.
        try:
            return np.asarray(float(value))
        except OverflowError:
            return np.asarray(math.copysign(math.inf, value))
    return np.asarray(value)


def _fail(message: str, max_abs: float | None = None, max_rel: float | None = None,
          where: tuple[int, ...] | None = None) -> Comparison:
    return Comparison(False, message, max_abs, max_rel, where)


_PASS = Comparison(True, "", None, None, None)


def compare(got: object, expected: object, *, rtol: float, atol: float, name: str = "value",
            max_rows: int = 8) -> Comparison:
    """Compare ``got`` (anything a student produced) with ``expected`` (plain data)."""
    if not (rtol >= 0 and atol >= 0) or max_rows < 0:
        raise ValueError(f"invalid tolerances or max_rows: rtol={rtol}, atol={atol}, max_rows={max_rows}")
    plain_expected = to_plain(expected)
    try:
        plain_got = to_plain(got)
    except Exception as exc:
        type_name = exc.type_name if isinstance(exc, _Unconvertible) else _type_name(got)
        return _fail(f"{name}: expected {_describe(plain_expected)}, got an object of type {type_name}.")
    try:
        return _compare(plain_got, plain_expected, name, rtol, atol, max_rows)
    except _BadExpected:
        raise
    except Exception as exc:  # never let a strange submission crash the grader
        return _fail(f"{name}: could not be compared ({type(exc).__name__}: {exc}).")


def _compare(got: object, expected: object, name: str, rtol: float, atol: float,
             max_rows: int) -> Comparison:
    if isinstance(expected, np.ndarray) or (_is_number(expected) and type(expected) is not bool):
        return _compare_arrays(got, expected, name, rtol, atol, max_rows)
    if isinstance(got, np.ndarray) and got.shape == () and got.dtype.kind in "bU":
        got = got.item()  # a 0-d bool/str array is as good as the scalar
    if isinstance(expected, list):
        return _compare_list(got, expected, name, rtol, atol, max_rows)
    if isinstance(expected, dict):
        return _compare_dict(got, expected, name, rtol, atol, max_rows)
    if expected is None or type(expected) in (bool, str):
        if type(got) is not type(expected):
            return _fail(f"{name}: expected {_describe(expected)}, got {_describe(got)}.")
        if got != expected:  # both are exact built-ins here, so == is trustworthy
            return _fail(f"{name}: got {_short_repr(got)}, expected {_short_repr(expected)}.")
        return _PASS
    raise _BadExpected(f"{name}: unsupported expected value of type {_type_name(expected)}")


def _combine(name: str, failures: list[Comparison], extra: list[str], max_rows: int) -> Comparison:
    messages = extra + [f.message for f in failures]
    if not messages:
        return _PASS
    shown = messages[:max_rows]
    if len(messages) > len(shown):
        shown.append(f"{name}: ... and {len(messages) - len(shown)} more differences not shown")
    return _fail("\n".join(shown))


def _compare_list(got: object, expected: list[object], name: str, rtol: float, atol: float,
                  max_rows: int) -> Comparison:
    if not isinstance(got, list):
        return _fail(f"{name}: expected {_describe(expected)}, got {_describe(got)}.")
    if len(got) != len(expected):
        return _fail(f"{name}: length mismatch: got {_plural(len(got), 'item')}, "
                     f"expected {len(expected)}.")
    failures = [c for i, (g, e) in enumerate(zip(got, expected))
                if not (c := _compare(g, e, f"{name}[{i}]", rtol, atol, max_rows)).passed]
    return _combine(name, failures, [], max_rows)


def _compare_dict(got: object, expected: dict[str, object], name: str, rtol: float, atol: float,
                  max_rows: int) -> Comparison:
    if not isinstance(got, dict):
        return _fail(f"{name}: expected {_describe(expected)}, got {_describe(got)}.")
    # Extra keys in got are ignored: a student may legitimately record more than was asked for.
    missing = [f"{name}: missing key {key!r}." for key in expected if key not in got]
    failures = [c for key, e in expected.items() if key in got
                if not (c := _compare(got[key], e, f"{name}[{key!r}]", rtol, atol, max_rows)).passed]
    return _combine(name, failures, missing, max_rows)


def _table(indices: list[tuple[int, ...]], got: npt.NDArray[Any], expected: npt.NDArray[Any],
           shown_from: int, n_bad: int) -> list[str]:
    rows = [("index", "got", "expected")]
    rows += [(repr(ix), _fmt(got[ix].item()), _fmt(expected[ix].item())) for ix in indices]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    lines = [f"  {a.ljust(w0)} | {b.ljust(w1)} | {c}" for a, b, c in rows]
    if n_bad > shown_from:
        rest = n_bad - shown_from
        lines.append(f"  ... and {rest} more {'mismatch' if rest == 1 else 'mismatches'} not shown")
    return lines


def _compare_arrays(got: object, expected: object, name: str, rtol: float, atol: float,
                    max_rows: int) -> Comparison:
    exp = expected if isinstance(expected, np.ndarray) else _scalar_array(expected)
    if isinstance(got, np.ndarray):
        arr = got
    elif _is_number(got):
        arr = _scalar_array(got)
    else:
        return _fail(f"{name}: expected {_describe(expected)}, got {_describe(got)}.")
    numeric = exp.dtype.kind in _NUMERIC_KINDS
    if not numeric and exp.dtype.kind not in _TEXT_KINDS:
        raise _BadExpected(f"{name}: unsupported expected dtype {exp.dtype}")
    if arr.dtype.kind not in (_NUMERIC_KINDS if numeric else exp.dtype.kind):
        return _fail(f"{name}: dtype mismatch: got {_dtype_label(arr.dtype)} array, "
                     f"expected {_dtype_label(exp.dtype)}.")
    if arr.shape != exp.shape:
        return _fail(f"{name}: shape mismatch: got {arr.shape}, expected {exp.shape}.")
    if not numeric:
        bad = np.asarray(arr != exp)
        n_bad = int(bad.sum())
        if n_bad == 0:
            return _PASS
        flat = np.flatnonzero(bad.ravel())[:max_rows]
        idx = [tuple(int(i) for i in ix) for ix in zip(*np.unravel_index(flat, exp.shape))]
        return _fail("\n".join([f"{name}: {n_bad} of {exp.size} elements differ."]
                               + _table(idx, arr, exp, len(idx), n_bad)))
    if exp.size == 0:
        return Comparison(True, "", None, None, None)

    work = np.complex128 if "c" in (arr.dtype.kind + exp.dtype.kind) else np.float64
    # Overflow (1e308 - -1e308) and inf - inf are expected here and handled explicitly below.
    with np.errstate(all="ignore"):
        g = arr.astype(work)
        e = exp.astype(work)
        abs_e = np.abs(e)
        diff = np.abs(g - e)
        finite = np.isfinite(g) & np.isfinite(e)
        # Non-finite values match only themselves (NaN only where NaN was expected), exactly like
        # numpy.isclose with equal_nan=True; a tolerance must not let a finite value match inf.
        same_nonfinite = ~finite & ((g == e) | (np.isnan(g) & np.isnan(e)))
        ok = np.where(finite, diff <= atol + rtol * abs_e, same_nonfinite)
        # For reporting, a matched inf/NaN differs by 0 and any other non-finite mismatch by inf,
        # so the maxima stay ordered numbers rather than NaN.
        diff = np.where(same_nonfinite, 0.0, np.where(np.isnan(diff), np.inf, diff))
        rel = np.where(diff == 0, 0.0, np.where(abs_e == 0, np.inf, diff / abs_e))
        rel = np.where(np.isnan(rel), np.inf, rel)
    n_bad = int(exp.size - np.count_nonzero(ok))
    i_abs = int(np.argmax(diff))
    i_rel = int(np.argmax(rel))
    max_abs = float(diff.flat[i_abs])
    max_rel = float(rel.flat[i_rel])

    if exp.ndim == 0:
        if n_bad == 0:
            return Comparison(True, "", max_abs, max_rel, None)
        got_s, exp_s = _fmt(arr.item()), _fmt(exp.item())
        if not finite.item():
            return _fail(f"{name}: got {got_s}, expected {exp_s}.", max_abs, max_rel)
        tol = atol + rtol * float(abs_e.item())
        return _fail(f"{name}: got {got_s}, expected {exp_s} (|got - expected| = {_fmt(max_abs)} "
                     f"> tolerance {_fmt(tol)}).", max_abs, max_rel)

    where_abs = tuple(int(i) for i in np.unravel_index(i_abs, exp.shape))
    if n_bad == 0:
        return Comparison(True, "", max_abs, max_rel, where_abs)
    where_rel = tuple(int(i) for i in np.unravel_index(i_rel, exp.shape))
    flat = np.flatnonzero(~ok.ravel())[:max_rows]
    idx = [tuple(int(i) for i in ix) for ix in zip(*np.unravel_index(flat, exp.shape))]
    lines = [
        f"{name}: {n_bad} of {exp.size} elements differ beyond tolerance "
        f"(|got - expected| <= {_fmt(atol)} + {_fmt(rtol)} * |expected|).",
        f"Max absolute difference: {_fmt(max_abs)} at index {where_abs}",
        f"Max relative difference: {_fmt(max_rel)} at index {where_rel}",
        *_table(idx, arr, exp, len(idx), n_bad),
    ]
    return _fail("\n".join(lines), max_abs, max_rel, where_abs)
