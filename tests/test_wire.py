"""The boundary format: arrays round-trip exactly, anything malformed is refused."""

from __future__ import annotations

import socket
import struct

import numpy as np
import pytest

from grader import wire


def roundtrip(value: object) -> object:
    a, b = socket.socketpair()
    with a, b:
        wire.send(a, {"type": "x", "v": wire.encode_value(value)})
        msg = wire.recv(b)
    assert msg is not None
    return wire.decode_value(msg["v"])


def test_arrays_and_scalars_round_trip() -> None:
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    got = roundtrip({"a": arr, "n": np.int64(3), "f": float("nan"), "l": [1, "s", None]})
    assert isinstance(got, dict)
    assert type(got["a"]) is np.ndarray and got["a"].dtype == np.float32
    np.testing.assert_array_equal(got["a"], arr)
    assert got["n"] == 3 and np.isnan(got["f"]) and got["l"] == [1, "s", None]


def test_subclass_arrives_as_plain_ndarray() -> None:
    class Sneaky(np.ndarray):
        def __eq__(self, other: object) -> bool:  # type: ignore[override]
            return True

    got = roundtrip(np.zeros(3).view(Sneaky))
    assert type(got) is np.ndarray


@pytest.mark.parametrize("payload, message", [
    ({"__nd__": ["object", [1], ""]}, "malformed array"),
    ({"__nd__": ["float32", [3], "AAAA"]}, "array data does not match its shape"),
    ({"__nd__": ["float32", [-1], ""]}, "malformed array shape"),
    ({"__nd__": ["float32", [True], ""]}, "malformed array shape"),
])
def test_malformed_arrays_are_refused(payload: object, message: str) -> None:
    with pytest.raises(wire.WireError, match=message):
        wire.decode_value(payload)


def test_oversized_and_garbage_frames_are_refused() -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(struct.pack(">I", wire.MAX_FRAME + 1))
        with pytest.raises(wire.WireError, match="exceeds"):
            wire.recv(b)
    a, b = socket.socketpair()
    with a, b:
        a.sendall(struct.pack(">I", 5) + b"nope!")
        with pytest.raises(wire.WireError, match="not JSON"):
            wire.recv(b)
    a, b = socket.socketpair()
    with a, b:
        a.sendall(struct.pack(">I", 2) + b"[]")
        with pytest.raises(wire.WireError, match="not a typed message"):
            wire.recv(b)


def test_unsendable_values_raise_type_error() -> None:
    with pytest.raises(TypeError, match="values of type set cannot be sent"):
        wire.encode_value({1, 2})
