"""The only data format that crosses the sandbox boundary.

Frames are a 4-byte big-endian length followed by UTF-8 JSON. Arrays travel as
``{"__nd__": [dtype, shape, base64]}`` with a dtype from a short allow-list, and are rebuilt on
the grader's side as fresh base-class ``numpy.ndarray`` objects. Nothing is ever unpickled: the
worst a hostile child can send is a wrong number or a malformed frame, and a malformed frame is
a ``WireError``.
"""

from __future__ import annotations

import base64
import json
import math
import socket
import struct
from typing import Any

import numpy as np

MAX_FRAME = 64 * 1024 * 1024
_HEADER = struct.Struct(">I")
_DTYPES = frozenset(
    ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
     "float16", "float32", "float64", "complex64", "complex128"]
)
_MAX_DEPTH = 32
# JSON arrays and objects in one frame. Each costs the grader ~100 bytes once parsed: a 64 MiB
# frame of ``[[],[],…]`` would otherwise become gigabytes of lists in the grader's memory.
MAX_CONTAINERS = 500_000


class WireError(Exception):
    """A frame that is too large, truncated, or not of the agreed shape."""


def encode_value(value: Any, _depth: int = 0) -> Any:
    """Turn a probe's return value into JSON-able data (runs in the child)."""
    if _depth > _MAX_DEPTH:
        raise TypeError("value nested too deeply")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, np.generic):
        return encode_value(value.item(), _depth + 1)
    if type(value).__module__.split(".")[0] == "torch" or hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        if value.nbytes > MAX_FRAME // 2:
            raise WireError(f"an array of {value.nbytes} bytes is too large to send")
        arr = np.array(value, order="C", copy=True)  # ascontiguousarray would make 0-d 1-d
        if arr.dtype.name not in _DTYPES:
            raise TypeError(f"arrays of dtype {arr.dtype} cannot be sent")
        if arr.nbytes > MAX_FRAME // 2:
            raise WireError(f"an array of {arr.nbytes} bytes is too large to send")
        return {"__nd__": [arr.dtype.name, list(arr.shape), base64.b64encode(arr.tobytes()).decode()]}
    if isinstance(value, (list, tuple)):
        return [encode_value(v, _depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(k): encode_value(v, _depth + 1) for k, v in value.items()}
    raise TypeError(f"values of type {type(value).__name__} cannot be sent")


def decode_value(data: Any, _depth: int = 0) -> Any:
    """Rebuild plain values on the grader's side, validating everything."""
    if _depth > _MAX_DEPTH:
        raise WireError("value nested too deeply")
    if data is None or isinstance(data, (bool, str, int)):
        return data
    if isinstance(data, float):
        return float(data)
    if isinstance(data, list):
        return [decode_value(v, _depth + 1) for v in data]
    if isinstance(data, dict):
        if set(data) == {"__nd__"}:
            return _decode_array(data["__nd__"])
        return {str(k): decode_value(v, _depth + 1) for k, v in data.items()}
    raise WireError(f"unexpected JSON value of type {type(data).__name__}")


def _decode_array(spec: Any) -> np.ndarray[Any, Any]:
    if not (isinstance(spec, list) and len(spec) == 3):
        raise WireError("malformed array")
    dtype, shape, payload = spec
    if dtype not in _DTYPES or not isinstance(payload, str) or not isinstance(shape, list):
        raise WireError("malformed array")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise WireError("malformed array shape")
    raw = base64.b64decode(payload, validate=True)
    dt = np.dtype(dtype)
    if math.prod(shape) * dt.itemsize != len(raw):
        raise WireError("array data does not match its shape")
    return np.frombuffer(raw, dtype=dt).reshape(shape).copy()


def send(sock: socket.socket, message: dict[str, Any]) -> None:
    body = json.dumps(message, allow_nan=True, separators=(",", ":")).encode()
    if len(body) > MAX_FRAME:
        raise WireError(f"frame of {len(body)} bytes exceeds the {MAX_FRAME}-byte limit")
    sock.sendall(_HEADER.pack(len(body)) + body)


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = sock.recv(min(n - len(chunks), 1 << 20))
        if not chunk:
            if chunks:
                raise WireError("connection closed in the middle of a frame")
            return None
        chunks += chunk
    return bytes(chunks)


def recv(sock: socket.socket) -> dict[str, Any] | None:
    """One message, or None at a clean end of stream."""
    header = _recv_exact(sock, _HEADER.size)
    if header is None:
        return None
    (length,) = _HEADER.unpack(header)
    if length > MAX_FRAME:
        raise WireError(f"frame of {length} bytes exceeds the {MAX_FRAME}-byte limit")
    body = _recv_exact(sock, length)
    if body is None:
        raise WireError("connection closed in the middle of a frame")
    containers = body.count(b"[") + body.count(b"{")  # counted in C, before any parsing
    if containers > MAX_CONTAINERS:
        raise WireError(f"frame holds {containers} arrays or objects, more than the "
                        f"{MAX_CONTAINERS} allowed")
    try:
        message = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(f"frame is not JSON: {exc}") from None
    except RecursionError:  # `[[[[…` nested deeper than the parser's stack
        raise WireError("frame is nested too deeply") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise WireError("frame is not a typed message")
    return message
