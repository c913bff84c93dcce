"""A minimal reader of ONNX model files: the graph's nodes (operator, inputs, outputs, attributes)
and its initializers as numpy arrays, from the protobuf wire format, without the ``onnx`` package.

Enough to port a small network's weights to PyTorch (see :mod:`cnnkit.nn.sface`); it does not
validate the model nor support external data.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnkit.core.errors import WeightsError

__all__ = ["OnnxNode", "OnnxGraph", "read_onnx"]

# TensorProto.DataType -> numpy dtype
_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 5: np.int16, 6: np.int32, 7: np.int64, 10: np.float16, 11: np.float64}


@dataclass
class OnnxNode:
    op_type: str
    inputs: list[str]
    outputs: list[str]
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class OnnxGraph:
    nodes: list[OnnxNode]
    initializers: dict[str, np.ndarray]
    inputs: list[str]
    outputs: list[str]


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        out |= (b & 0x7F) << shift
        if not b & 0x80:
            return out, pos
        shift += 7


def _fields(buf: bytes):
    """(field number, wire type, value) of one message; length-delimited values as bytes."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, pos = _varint(buf, pos)
        elif wire == 1:
            val, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            val, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            val, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield num, wire, val


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _ints(wire: int, val: Any) -> list[int]:
    """A repeated int64 field, packed (bytes) or not (one varint)."""
    if wire == 0:
        return [_signed(val)]
    out, pos = [], 0
    while pos < len(val):
        v, pos = _varint(val, pos)
        out.append(_signed(v))
    return out


def _tensor(buf: bytes) -> tuple[str, np.ndarray]:
    dims: list[int] = []
    dtype, name, raw = 1, "", None
    floats: list[float] = []
    int64s: list[int] = []
    int32s: list[int] = []
    for num, wire, val in _fields(buf):
        if num == 1:
            dims += _ints(wire, val)
        elif num == 2:
            dtype = val
        elif num == 4:
            floats += list(struct.unpack(f"<{len(val) // 4}f", val)) if wire == 2 else list(struct.unpack("<f", val))
        elif num == 5:
            int32s += _ints(wire, val)
        elif num == 7:
            int64s += _ints(wire, val)
        elif num == 8:
            name = val.decode()
        elif num == 9:
            raw = val
    if dtype not in _DTYPES:
        raise ValueError(f"tensor {name!r}: unsupported data type {dtype}")
    np_dtype = _DTYPES[dtype]
    if raw is not None:
        arr = np.frombuffer(raw, dtype=np.dtype(np_dtype).newbyteorder("<")).astype(np_dtype)
    elif floats:
        arr = np.asarray(floats, dtype=np_dtype)
    elif int64s:
        arr = np.asarray(int64s, dtype=np_dtype)
    else:
        arr = np.asarray(int32s, dtype=np_dtype)
    return name, arr.reshape(dims) if dims else arr.reshape(())


def _attribute(buf: bytes) -> tuple[str, Any]:
    name, value, ints = "", None, []
    for num, wire, val in _fields(buf):
        if num == 1:
            name = val.decode()
        elif num == 2:
            value = struct.unpack("<f", val)[0]
        elif num == 3:
            value = _signed(val)
        elif num == 4:
            value = val
        elif num == 5:
            value = _tensor(val)[1]
        elif num == 8:
            ints += _ints(wire, val)
    return name, ints if ints else value


def _node(buf: bytes) -> OnnxNode:
    node = OnnxNode("", [], [])
    for num, _, val in _fields(buf):
        if num == 1:
            node.inputs.append(val.decode())
        elif num == 2:
            node.outputs.append(val.decode())
        elif num == 4:
            node.op_type = val.decode()
        elif num == 5:
            key, value = _attribute(val)
            node.attributes[key] = value
    return node


def _value_name(buf: bytes) -> str:
    for num, _, val in _fields(buf):
        if num == 1:
            return val.decode()
    return ""


def read_onnx(path: str | os.PathLike[str]) -> OnnxGraph:
    """Nodes, initializers, input and output names of the ONNX file at ``path``.

    Raises:
        WeightsError: the file cannot be read or is not an ONNX model.
    """
    try:
        data = open(path, "rb").read()
        graph = next((val for num, wire, val in _fields(data) if num == 7 and wire == 2), None)
        if graph is None:
            raise ValueError("no graph")
        out = OnnxGraph([], {}, [], [])
        for num, _, val in _fields(graph):
            if num == 1:
                out.nodes.append(_node(val))
            elif num == 5:
                name, arr = _tensor(val)
                out.initializers[name] = arr
            elif num == 11:
                out.inputs.append(_value_name(val))
            elif num == 12:
                out.outputs.append(_value_name(val))
    except (OSError, ValueError, IndexError, struct.error, UnicodeDecodeError) as exc:
        raise WeightsError(f"{os.fspath(path)}: not a readable ONNX model ({exc})") from None
    return out
