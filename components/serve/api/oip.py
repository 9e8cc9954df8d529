"""Open Inference Protocol v2: tensors in, a feature frame or entity ids out.

Two input forms, told apart by the tensor names:
- one tensor named after the entity key (e.g. `customer_id`) or `entity_id`, datatype
  INT64 (or BYTES for string keys): the features are looked up in Feast;
- one tensor per feature of the feature service (shape [n] or [n, 1]), every feature
  present: no lookup. `null` in `data` means a missing value (the model imputes it).
Outputs: `score` (FP32, positive-class probability) and `decision` (BOOL).

The binary tensor data extension (`binary_tensor_data`, what KServe's and Triton's clients
send by default): the body is a JSON header of `Inference-Header-Content-Length` bytes, then
the raw elements of each input that has `parameters.binary_data_size`, in input order
(little-endian; BOOL one byte; BYTES each prefixed with its 4-byte length). `fastpath.Front`
splits such a body; `parse_inputs` decodes the inputs; outputs come back binary when
`parameters.binary_data_output` (request) or an output's `parameters.binary_data` asks.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd

from components.common.config import ColumnType, SeamlessConfig
from components.serve.api.schemas import InferInput, InferRequest, TensorMetadata

INT_TYPES = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
FLOAT_TYPES = {"FP16", "FP32", "FP64"}
DATATYPE: dict[ColumnType, str] = {
    "int": "INT64",
    "float": "FP64",
    "string": "BYTES",
    "bool": "BOOL",
    "timestamp": "BYTES",
}
ACCEPTED: dict[ColumnType, set[str]] = {
    "int": INT_TYPES,
    "float": FLOAT_TYPES | INT_TYPES,
    "string": {"BYTES"},
    "bool": {"BOOL"},
    "timestamp": {"BYTES"},
}
OUTPUTS = [
    TensorMetadata(name="score", datatype="FP32", shape=[-1]),
    TensorMetadata(name="decision", datatype="BOOL", shape=[-1]),
]
ENTITY_ALIAS = "entity_id"
EXTENSIONS = ["binary_tensor_data"]
_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
# Binary layout of the fixed-size datatypes (the protocol's: little-endian, BOOL one byte).
BINARY_DTYPES: dict[str, str] = {
    "BOOL": "?",
    "INT8": "i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}


class OipError(Exception):
    """A request the protocol rejects; `status` is the HTTP code."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def input_metadata(config: SeamlessConfig) -> list[TensorMetadata]:
    return [
        TensorMetadata(name=name, datatype=DATATYPE[kind], shape=[-1])
        for name, kind in config.feature_types().items()
    ]


def _flatten(data: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in data:
        if isinstance(v, list):
            out.extend(_flatten(v))
        else:
            out.append(v)
    return out


def split_binary(body: bytes, header_length: bytes) -> tuple[bytes, memoryview]:
    """(JSON header, tensor bytes) of a binary tensor data request."""
    try:
        n = int(header_length)
    except ValueError:
        n = -1
    if not 0 <= n <= len(body):
        shown = header_length[:40].decode("latin-1")
        raise OipError(
            f"Header Inference-Header-Content-Length is '{shown}': it must be the byte length "
            f"of the JSON part of the body (binary tensor data extension; the body has "
            f"{len(body)} bytes)."
        )
    return body[:n], memoryview(body)[n:]


def binary_parts(inputs: list[InferInput], binary: memoryview) -> list[memoryview | None]:
    """Each input's slice of the binary tensor data (None: its elements are in `data`)."""
    parts: list[memoryview | None] = []
    offset = 0
    for tensor in inputs:
        size = tensor.parameters.get("binary_data_size") if tensor.parameters else None
        if size is None:
            parts.append(None)
            continue
        if type(size) is not int or size < 0:
            raise OipError(
                f"Input '{tensor.name}': parameters.binary_data_size must be a byte count, "
                f"got {str(size)[:40]!r}."
            )
        if tensor.data is not None:
            raise OipError(
                f"Input '{tensor.name}' has both `data` and parameters.binary_data_size: give one."
            )
        if offset + size > len(binary):
            raise OipError(
                f"Input '{tensor.name}': parameters.binary_data_size {size} runs past the end of "
                f"the binary data ({len(binary) - offset} bytes left)."
            )
        parts.append(binary[offset : offset + size])
        offset += size
    if offset != len(binary):
        raise OipError(
            f"The binary tensor data has {len(binary)} bytes but the inputs' "
            f"parameters.binary_data_size add up to {offset}."
        )
    return parts


def _decode(tensor: InferInput, raw: memoryview) -> list[Any]:
    """The elements of one input's binary data (NaN in a binary FP tensor = missing, as a
    JSON `null` is: JSON has no NaN)."""
    name, datatype = tensor.name, tensor.datatype
    if datatype == "BYTES":
        out: list[Any] = []
        i, n = 0, len(raw)
        while i < n:
            if i + 4 > n:
                raise OipError(
                    f"Input '{name}' (BYTES): the binary data ends inside the 4-byte length of "
                    f"element {len(out)}."
                )
            size = int.from_bytes(raw[i : i + 4], "little")
            i += 4
            if i + size > n:
                raise OipError(
                    f"Input '{name}' (BYTES): element {len(out)} is {size} bytes long but only "
                    f"{n - i} bytes are left."
                )
            try:
                out.append(str(raw[i : i + size], "utf-8"))
            except UnicodeDecodeError:
                raise OipError(
                    f"Input '{name}' (BYTES): element {len(out)} is not UTF-8 text."
                ) from None
            i += size
        return out
    dtype = np.dtype(BINARY_DTYPES[datatype])  # the datatype was checked before
    if len(raw) % dtype.itemsize:
        raise OipError(
            f"Input '{name}' ({datatype}): parameters.binary_data_size {len(raw)} is not a "
            f"multiple of the element size ({dtype.itemsize} bytes)."
        )
    values = np.frombuffer(raw, dtype=dtype)
    if dtype.kind == "f":
        nan = np.isnan(values)
        if nan.any():
            return [None if m else v for v, m in zip(values.tolist(), nan.tolist(), strict=True)]
    return values.tolist()  # type: ignore[no-any-return]


def _values(tensor: InferInput, raw: memoryview | None = None) -> list[Any]:
    """The tensor's elements, checked against its shape ([n] or [n, 1])."""
    if raw is not None:
        data = _decode(tensor, raw)
    elif tensor.data is None:
        if tensor.parameters and "binary_data_size" in tensor.parameters:
            raise OipError(
                f"Input '{tensor.name}' has parameters.binary_data_size but the request has no "
                "Inference-Header-Content-Length header (the binary tensor data extension): "
                "send the header with the binary data, or send JSON tensors with `data`."
            )
        raise OipError(
            f"Input '{tensor.name}' has no `data`: send JSON tensors with `data`, or binary "
            "tensor data with parameters.binary_data_size and the "
            "Inference-Header-Content-Length header."
        )
    else:
        data = _flatten(tensor.data)
    shape = tensor.shape
    if not shape or any(d < 0 for d in shape) or len(shape) > 2 or math.prod(shape) != len(data):
        raise OipError(
            f"Input '{tensor.name}': shape {shape} does not match its {len(data)} values "
            "(expected [n] or [n, 1])."
        )
    if len(shape) == 2 and shape[1] != 1:
        raise OipError(f"Input '{tensor.name}': shape {shape} must be [n] or [n, 1].")
    return data


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _check_value(name: str, datatype: str, value: Any, i: int) -> None:
    if value is None:
        return
    ok = (
        (datatype in INT_TYPES and isinstance(value, int) and not isinstance(value, bool))
        or (
            datatype in FLOAT_TYPES
            and isinstance(value, (int, float))
            and not isinstance(value, bool)
        )
        or (datatype == "BYTES" and isinstance(value, str))
        or (datatype == "BOOL" and isinstance(value, bool))
    )
    if ok and isinstance(value, int) and not isinstance(value, bool):
        # Past int64 the store and the model both fail deep inside; say so here.
        ok = INT64_MIN <= value <= INT64_MAX or (datatype in FLOAT_TYPES and abs(value) < 2**1023)
    if ok and isinstance(value, float):
        ok = math.isfinite(value)
    if not ok:
        shown = repr(value) if len(repr(value)) < 40 else repr(value)[:37] + "..."
        raise OipError(f"Input '{name}' ({datatype}): element {i} is {shown}, not a valid value.")


def parse_inputs(
    config: SeamlessConfig, inputs: list[InferInput], binary: memoryview | None = None
) -> tuple[list[Any] | None, pd.DataFrame | None]:
    """(entity ids, None) for a lookup request, (None, feature frame) for a full payload.

    `binary`: the tensor bytes of a binary tensor data request (`split_binary`)."""
    key = config.entity_key()
    slices = binary_parts(inputs, binary) if binary is not None else [None] * len(inputs)
    if len(inputs) == 1 and inputs[0].name in (key, ENTITY_ALIAS):
        tensor = inputs[0]
        want = "INT64" if config.entity_type() == "int" else "BYTES"
        allowed = INT_TYPES if want == "INT64" else {"BYTES"}
        if tensor.datatype not in allowed:
            raise OipError(f"Input '{tensor.name}' must be {want}, got {tensor.datatype}.")
        ids = _values(tensor, slices[0])
        for i, v in enumerate(ids):
            if v is None:
                raise OipError(f"Input '{tensor.name}': element {i} is null.")
            _check_value(tensor.name, tensor.datatype, v, i)
        return ids, None

    types = config.feature_types()
    names = [t.name for t in inputs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    unknown = [n for n in names if n not in types]
    missing = [f for f in types if f not in names]
    if dupes or unknown or missing:
        parts = []
        if dupes:
            parts.append(f"duplicated inputs {dupes}")
        if unknown:
            parts.append(f"unknown inputs {unknown}")
        if missing:
            parts.append(f"missing inputs {missing}")
        raise OipError(
            f"Give one tensor per feature or a single entity tensor ('{key}'): {'; '.join(parts)}."
        )
    columns: dict[str, list[Any]] = {}
    for tensor, raw in zip(inputs, slices, strict=True):
        kind = types[tensor.name]
        if tensor.datatype not in ACCEPTED[kind]:
            raise OipError(
                f"Input '{tensor.name}' is a {kind} feature: datatype must be one of "
                f"{sorted(ACCEPTED[kind])}, got {tensor.datatype}."
            )
        values = _values(tensor, raw)
        for i, v in enumerate(values):
            _check_value(tensor.name, tensor.datatype, v, i)
        columns[tensor.name] = values
    sizes = {len(v) for v in columns.values()}
    if len(sizes) != 1:
        raise OipError(f"Inputs have different batch sizes {sorted(sizes)}.")
    return None, pd.DataFrame(columns)


def outputs_wanted(requested: list[str] | None) -> list[str]:
    known = [o.name for o in OUTPUTS]
    if not requested:
        return known
    unknown = [n for n in requested if n not in known]
    if unknown:
        raise OipError(f"Unknown outputs {unknown}; this model has {known}.")
    return requested


def _flag(value: Any, where: str) -> bool:
    if type(value) is not bool:
        raise OipError(f"{where} must be true or false, got {str(value)[:40]!r}.")
    return value


def binary_outputs(request: InferRequest, wanted: list[str]) -> set[str]:
    """The outputs to answer as binary tensor data: an output's `parameters.binary_data`,
    else the request's `parameters.binary_data_output` (default false), as Triton does."""
    default = False
    if request.parameters and "binary_data_output" in request.parameters:
        default = _flag(request.parameters["binary_data_output"], "parameters.binary_data_output")
    chosen = dict.fromkeys(wanted, default)
    for out in request.outputs or ():
        if out.parameters and "binary_data" in out.parameters:
            where = f"Output '{out.name}': parameters.binary_data"
            chosen[out.name] = _flag(out.parameters["binary_data"], where)
    return {name for name, binary in chosen.items() if binary}


def binary_response(
    head: dict[str, Any], outputs: list[tuple[str, str, np.ndarray]], binary: set[str]
) -> tuple[bytes, int]:
    """(body, JSON header length) of an answer whose `binary` outputs follow the JSON
    header as raw little-endian elements."""
    described: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for name, datatype, values in outputs:
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": [len(values)]}
        if name in binary:
            raw = values.astype(BINARY_DTYPES[datatype]).tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = values.tolist()
        described.append(entry)
    header = _JSON.encode({**head, "outputs": described}).encode("utf-8")
    return header + b"".join(chunks), len(header)
