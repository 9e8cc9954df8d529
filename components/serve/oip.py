"""Open Inference Protocol v2: tensors in, a feature frame or entity ids out.

Two input forms, told apart by the tensor names:
- one tensor named after the entity key (e.g. `customer_id`) or `entity_id`, datatype
  INT64 (or BYTES for string keys): the features are looked up in Feast;
- one tensor per feature of the feature service (shape [n] or [n, 1]), every feature
  present: no lookup. `null` in `data` means a missing value (the model imputes it).
Outputs: `score` (FP32, positive-class probability) and `decision` (BOOL).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from components.common.config import ColumnType, SeamlessConfig
from components.serve.schemas import InferInput, TensorMetadata, entity_type

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


def _values(tensor: InferInput) -> list[Any]:
    """The tensor's elements, checked against its shape ([n] or [n, 1])."""
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
    config: SeamlessConfig, inputs: list[InferInput]
) -> tuple[list[Any] | None, pd.DataFrame | None]:
    """(entity ids, None) for a lookup request, (None, feature frame) for a full payload."""
    key = config.entity_key()
    if len(inputs) == 1 and inputs[0].name in (key, ENTITY_ALIAS):
        tensor = inputs[0]
        want = "INT64" if entity_type(config) == "int" else "BYTES"
        allowed = INT_TYPES if want == "INT64" else {"BYTES"}
        if tensor.datatype not in allowed:
            raise OipError(f"Input '{tensor.name}' must be {want}, got {tensor.datatype}.")
        ids = _values(tensor)
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
    for tensor in inputs:
        kind = types[tensor.name]
        if tensor.datatype not in ACCEPTED[kind]:
            raise OipError(
                f"Input '{tensor.name}' is a {kind} feature: datatype must be one of "
                f"{sorted(ACCEPTED[kind])}, got {tensor.datatype}."
            )
        values = _values(tensor)
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
