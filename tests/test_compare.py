"""Tests for grader.compare: exact messages matter because students read them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from grader.compare import Comparison, compare, to_plain

TOL: dict[str, float] = {"rtol": 1e-5, "atol": 1e-6}


def cmp(got: object, expected: object, **kw: Any) -> Comparison:
    return compare(got, expected, **{**TOL, **kw})


class AlwaysEqual:
    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    __hash__ = object.__hash__


class LyingArray(np.ndarray):
    def __eq__(self, other: object) -> Any:
        return True

    def __ne__(self, other: object) -> Any:
        return False

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        return np.full(self.shape, 1.0)


class LyingTensor(torch.Tensor):
    def __eq__(self, other: object) -> Any:
        return True

    def detach(self) -> Any:
        return torch.ones(self.shape)

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        # Every tensor operation on this subclass pretends the data is all ones.
        result = super().__torch_function__(func, types, args, kwargs or {})  # type: ignore[no-untyped-call]
        if func is torch.Tensor.numpy:
            return np.ones(result.shape)
        return result


class LyingFloat(float):
    def __float__(self) -> float:
        return 1.0

    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = float.__hash__


# ---------------------------------------------------------------- passing / basic failing


def test_within_tolerance_passes() -> None:
    expected = np.linspace(0, 1, 12).reshape(3, 4)
    result = cmp(expected + 1e-7, expected)
    assert result.passed
    assert result.message == ""
    assert result.max_abs is not None and result.max_abs == pytest.approx(1e-7)
    assert result.where is not None and len(result.where) == 2


def test_failing_array_exact_message() -> None:
    expected = np.array([[1.0, 2.0, 0.0], [4.0, 5.0, 6.0]])
    got = expected.copy()
    got[0, 1] = 2.5
    got[1, 0] = 3.0
    got[0, 2] = 0.125
    result = cmp(got, expected, name="all_h")
    assert not result.passed
    assert result.message.splitlines() == [
        "all_h: 3 of 6 elements differ beyond tolerance (|got - expected| <= 1e-06 + 1e-05 * |expected|).",
        "Max absolute difference: 1 at index (1, 0)",
        "Max relative difference: inf at index (0, 2)",
        "  index  | got   | expected",
        "  (0, 1) | 2.5   | 2",
        "  (0, 2) | 0.125 | 0",
        "  (1, 0) | 3     | 4",
    ]
    assert result.max_abs == 1.0
    assert result.max_rel == math.inf
    assert result.where == (1, 0)


def test_scalar_failure_message() -> None:
    result = cmp(0.5, 0.25, name="loss")
    assert not result.passed
    assert result.message == "loss: got 0.5, expected 0.25 (|got - expected| = 0.25 > tolerance 3.5e-06)."
    assert result.max_abs == 0.25
    assert result.max_rel == 1.0
    assert result.where is None


def test_relative_difference_with_zero_expected_is_inf() -> None:
    result = cmp(np.array([0.0, 0.1]), np.array([0.0, 0.0]), name="z")
    assert not result.passed
    assert result.max_rel == math.inf
    assert "Max relative difference: inf at index (1,)" in result.message.splitlines()


def test_truncation_note() -> None:
    result = cmp(np.arange(1.0, 21.0), np.zeros(20), name="x", max_rows=3)
    lines = result.message.splitlines()
    assert lines[0].startswith("x: 20 of 20 elements differ beyond tolerance")
    assert lines[3:] == [
        "  index | got | expected",
        "  (0,)  | 1   | 0",
        "  (1,)  | 2   | 0",
        "  (2,)  | 3   | 0",
        "  ... and 17 more mismatches not shown",
    ]


def test_truncation_note_singular() -> None:
    result = cmp(np.ones(3), np.zeros(3), name="x", max_rows=2)
    assert result.message.splitlines()[-1] == "  ... and 1 more mismatch not shown"


def test_no_truncation_note_when_all_rows_fit() -> None:
    result = cmp(np.ones(3), np.zeros(3), name="x", max_rows=3)
    assert "not shown" not in result.message


def test_empty_arrays_pass() -> None:
    assert cmp(np.zeros((0, 3)), np.zeros((0, 3))).passed


# ---------------------------------------------------------------- NaN and infinities


def test_nan_in_got_where_finite_expected_fails() -> None:
    result = cmp(np.array([1.0, np.nan]), np.array([1.0, 2.0]), name="h")
    assert not result.passed
    assert result.message.splitlines()[-1] == "  (1,)  | nan | 2"
    assert cmp(math.nan, 2.0, name="loss").message == "loss: got nan, expected 2."


def test_nan_vs_nan_passes() -> None:
    assert cmp(np.array([1.0, np.nan]), np.array([1.0, np.nan])).passed
    assert cmp(math.nan, math.nan).passed


def test_finite_got_where_nan_expected_fails() -> None:
    assert not cmp(np.array([0.0]), np.array([np.nan])).passed


def test_inf_matches_same_sign_only() -> None:
    assert cmp(np.array([np.inf, -np.inf]), np.array([np.inf, -np.inf])).passed
    result = cmp(np.array([np.inf]), np.array([-np.inf]), name="v")
    assert not result.passed
    assert result.message.splitlines()[-1] == "  (0,)  | inf | -inf"
    assert cmp(math.inf, -math.inf, name="s").message == "s: got inf, expected -inf."


def test_finite_never_matches_inf_even_with_huge_tolerance() -> None:
    assert not compare(1e300, math.inf, rtol=1.0, atol=1.0).passed


def test_gigantic_values_do_not_overflow() -> None:
    with np.errstate(all="raise"):
        result = cmp(1e308, -1e308, name="big")
        array_result = cmp(np.array([1e308, 1.0]), np.array([-1e308, 1.0]), name="big")
    assert not result.passed
    assert result.message == "big: got 1e+308, expected -1e+308 (|got - expected| = inf > tolerance 1e+303)."
    assert not array_result.passed
    assert array_result.max_abs == math.inf
    assert array_result.where == (0,)


# ---------------------------------------------------------------- shapes and dtypes


def test_zero_d_array_vs_python_float_passes() -> None:
    assert cmp(np.array(0.25), 0.25).passed
    assert cmp(0.25, np.array(0.25)).passed
    assert cmp(np.float32(0.25), 0.25).passed


def test_shape_one_vs_scalar_fails() -> None:
    result = cmp(np.array([0.25]), 0.25, name="loss")
    assert not result.passed
    assert result.message == "loss: shape mismatch: got (1,), expected ()."
    assert cmp(0.25, np.array([0.25]), name="loss").message == "loss: shape mismatch: got (), expected (1,)."


def test_shape_mismatch_sentence() -> None:
    result = cmp(np.zeros((4, 5, 3)), np.zeros((4, 5, 2)), name="all_h")
    assert result.message == "all_h: shape mismatch: got (4, 5, 3), expected (4, 5, 2)."


def test_dtype_mismatch_sentence() -> None:
    result = cmp(np.array(["hello", "world"]), np.zeros(2, dtype=np.float32), name="w")
    assert result.message == "w: dtype mismatch: got <U5 array, expected float32."
    obj = cmp(np.array([1.0, AlwaysEqual()], dtype=object), np.zeros(2), name="w")
    assert obj.message == "w: dtype mismatch: got object array, expected float64."


def test_float32_vs_float64_passes() -> None:
    expected = np.linspace(0, 1, 7)
    assert cmp(expected.astype(np.float32), expected).passed
    assert cmp(expected, expected.astype(np.float32)).passed


def test_int_and_bool_got_vs_float_expected() -> None:
    assert cmp(np.array([1, 2, 3]), np.array([1.0, 2.0, 3.0])).passed
    assert cmp(3, 3.0).passed
    assert cmp(np.array([True, False]), np.array([1.0, 0.0])).passed


def test_float_got_vs_int_expected_uses_tolerance() -> None:
    assert cmp(np.array([1.0, 2.0000001]), np.array([1, 2])).passed
    assert not cmp(np.array([1.5, 2.0]), np.array([1, 2])).passed


def test_unsigned_ints_do_not_wrap() -> None:
    assert not cmp(np.array([0], dtype=np.uint8), np.array([255], dtype=np.uint8)).passed


def test_wrong_kind_of_value() -> None:
    assert cmp("0.5", 0.5, name="loss").message == "loss: expected a float, got a str."
    assert cmp([1.0, 2.0], np.zeros(2), name="v").message == (
        "v: expected a float64 array of shape (2,), got a list of 2 items."
    )


# ---------------------------------------------------------------- hostile and torch inputs


def test_object_with_always_true_eq_fails() -> None:
    result = cmp(AlwaysEqual(), np.zeros(3), name="out")
    assert not result.passed
    assert result.message == "out: expected a float64 array of shape (3,), got an object of type AlwaysEqual."
    assert not cmp(AlwaysEqual(), "relu").passed
    assert not cmp([AlwaysEqual()], [1.0]).passed


def test_numpy_subclass_with_lying_eq_fails() -> None:
    got = np.zeros(3).view(LyingArray)
    result = cmp(got, np.ones(3), name="out")
    assert not result.passed
    assert result.max_abs == 1.0
    assert to_plain(got).__class__ is np.ndarray


def test_lying_float_subclass_fails() -> None:
    result = cmp(LyingFloat(0.5), 1.0, name="loss")
    assert not result.passed
    assert to_plain(LyingFloat(0.5)) == 0.5


def test_torch_tensor_requires_grad() -> None:
    expected = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    good = torch.tensor(expected, requires_grad=True)
    assert cmp(good * 1, expected).passed
    bad = torch.tensor([[1.0, 2.0], [3.0, 5.0]], requires_grad=True)
    result = cmp(bad * 1, expected, name="out")
    assert not result.passed
    assert result.where == (1, 1)
    assert result.message.splitlines()[-1] == "  (1, 1) | 5   | 4"


def test_torch_scalar_and_bfloat16() -> None:
    assert cmp(torch.tensor(0.25), 0.25).passed
    assert cmp(torch.tensor([0.5], dtype=torch.bfloat16), np.array([0.5])).passed


def test_torch_subclass_fails_correctly() -> None:
    got = torch.zeros(3).as_subclass(LyingTensor)
    result = cmp(got, np.ones(3), name="out")
    assert not result.passed
    assert result.max_abs == 1.0
    assert cmp(torch.ones(3).as_subclass(LyingTensor), np.ones(3)).passed


def test_to_plain_conversions() -> None:
    assert to_plain(np.float64(1.5)).__class__ is float
    assert to_plain(np.int64(3)).__class__ is int
    assert to_plain(np.bool_(True)) is True
    assert to_plain((1, np.float32(2.0), "a")) == [1, 2.0, "a"]
    source = np.arange(3.0)
    copy = to_plain(source)
    assert isinstance(copy, np.ndarray) and copy is not source
    with pytest.raises(TypeError, match="set"):
        to_plain({1, 2})
    with pytest.raises(TypeError):
        to_plain({1: 2})


def test_unconvertible_nested_names_inner_type() -> None:
    result = cmp([1.0, {2}], [1.0, 2.0], name="params")
    assert result.message == "params: expected a list of 2 items, got an object of type set."


def test_self_referential_list_does_not_raise() -> None:
    loop: list[object] = []
    loop.append(loop)
    assert not cmp(loop, [1.0]).passed


# ---------------------------------------------------------------- structural comparisons


def test_nested_dict_and_list_messages() -> None:
    expected = {"train_acc": [0.5, 0.75], "lr": 0.1, "name": "sgd"}
    got = {"train_acc": [0.5, 0.7], "name": "adam"}
    result = cmp(got, expected, name="history")
    assert not result.passed
    assert result.message.splitlines() == [
        "history: missing key 'lr'.",
        "history['train_acc'][1]: got 0.7, expected 0.75 (|got - expected| = 0.05 > tolerance 8.5e-06).",
        "history['name']: got 'adam', expected 'sgd'.",
    ]


def test_list_length_mismatch() -> None:
    result = cmp([1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0], name="params")
    assert result.message == "params: length mismatch: got 3 items, expected 4."


def test_nested_array_in_list() -> None:
    result = cmp([np.zeros(2), np.zeros((2, 3))], [np.zeros(2), np.zeros((2, 2))], name="params")
    assert result.message == "params[1]: shape mismatch: got (2, 3), expected (2, 2)."


def test_extra_keys_ignored_and_structural_passes() -> None:
    assert cmp({"a": [1, "x", None, True], "extra": 1}, {"a": [1, "x", None, True]}).passed


def test_bool_and_none() -> None:
    assert cmp(np.bool_(True), True).passed
    assert cmp(True, False, name="flag").message == "flag: got True, expected False."
    assert cmp(1, True, name="flag").message == "flag: expected a bool, got an int."
    assert cmp(0.0, None, name="x").message == "x: expected None, got a float."


def test_many_failing_items_are_truncated() -> None:
    result = cmp([1.0] * 5, [0.0] * 5, name="p", max_rows=2)
    lines = result.message.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("p[0]: got 1, expected 0")
    assert lines[2] == "p: ... and 3 more differences not shown"


def test_string_arrays_compare_exactly() -> None:
    assert cmp(np.array(["a", "b"]), np.array(["a", "b"])).passed
    result = cmp(np.array(["a", "c"]), np.array(["a", "b"]), name="labels")
    assert result.message.splitlines() == [
        "labels: 1 of 2 elements differ.",
        "  index | got | expected",
        "  (1,)  | 'c' | 'b'",
    ]


def test_bad_expected_raises() -> None:
    with pytest.raises(ValueError):
        cmp(np.zeros(2), np.array([object(), object()], dtype=object))
    with pytest.raises(ValueError):
        compare(1.0, 1.0, rtol=-1.0, atol=0.0)



def test_expected_values_are_the_same_computed_or_read_from_the_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Computed, the reference's values kept the probe's key order; read back from the cache
    they were sorted, and a failing check listed its outputs in another order (a Dask run,
    whose expected values came from the cache, against a local one that computed them)."""
    from grader import spec
    from grader.execution import Execution, ProbeAnswer
    from grader.grading import expected as expected_mod
    from grader.grading.plan import GradingPlan
    from tests.conftest import ROOT

    monkeypatch.setenv("GRADER_CACHE_DIR", str(tmp_path / "cache"))
    a = spec.find(ROOT, "rnn_and_grad")
    plan = GradingPlan.build(a)
    value = {"x_grad": np.array([1.0, 2.0]), "h_grads": {"b": np.array([3.0]), "a": (4.0, 5.0)}}

    class Answering:  # the reference's run, as any executor reports it
        def run(self, **_: Any) -> Execution:
            return Execution((), {key: ProbeAnswer(True, value) for key in plan.requests}, {})

    reference = ROOT / "reference" / a.notebook
    fresh = expected_mod.compute(plan=plan, reference=reference, executor=Answering())  # type: ignore[arg-type]
    cached = expected_mod.lookup(plan=plan, reference=reference)
    assert cached is not None and set(fresh) == set(cached) == set(plan.requests)
    for key in fresh:
        assert list(fresh[key]) == list(cached[key]) == ["h_grads", "x_grad"]
        assert list(fresh[key]["h_grads"]) == ["a", "b"]
        assert repr(fresh[key]) == repr(cached[key])
