"""Request and response bodies. The request models are built from the use-case config,
so the OpenAPI document names every feature with its type.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict, create_model, model_validator

from components.common.config import ColumnType, SeamlessConfig

# Strict: "12" is not an int and 1 is not a string; a float field still accepts 3.
# Ints within int64 (what the stores and the model hold); floats finite (JSON's
# non-standard Infinity/NaN literals are otherwise accepted by Python's parser).
PY_TYPES: dict[ColumnType, Any] = {
    "int": Annotated[int, Strict(), Field(ge=-(2**63), le=2**63 - 1)],
    "float": Annotated[float, Strict(), Field(allow_inf_nan=False)],
    "string": Annotated[str, Strict()],
    "bool": Annotated[bool, Strict()],
    "timestamp": datetime,
}


def instance_model(config: SeamlessConfig) -> type[BaseModel]:
    """One full feature row: every feature required (null allowed: the model imputes it)."""
    fields: dict[str, Any] = {
        name: (PY_TYPES[kind] | None, Field(..., description=f"{kind} feature"))
        for name, kind in config.feature_types().items()
    }
    return create_model(  # type: ignore[no-any-return, call-overload]
        "Instance", __config__=ConfigDict(extra="forbid"), **fields
    )


class _OneOf(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _exactly_one(self) -> Any:
        if (getattr(self, "entity_ids", None) is None) == (
            getattr(self, "instances", None) is None
        ):
            raise ValueError("give exactly one of 'entity_ids' or 'instances'")
        return self


def predict_request_model(config: SeamlessConfig) -> type[BaseModel]:
    """`{"entity_ids": [...]}` (features looked up in Feast) or `{"instances": [...]}`."""
    key_type = PY_TYPES[config.entity_type()]
    instance = instance_model(config)

    fields: dict[str, Any] = {
        "entity_ids": (
            list[key_type] | None,  # type: ignore[valid-type]
            Field(None, min_length=1, description=f"Values of '{config.entity_key()}'."),
        ),
        "instances": (
            list[instance] | None,  # type: ignore[valid-type]
            Field(None, min_length=1, description="Full feature rows (no lookup)."),
        ),
    }
    return create_model("PredictRequest", __base__=_OneOf, **fields)


class Prediction(BaseModel):
    entity_id: int | str | None
    """The entity (null for `instances` rows)."""
    index: int
    """Position in the request."""
    score: float
    """Positive-class probability."""
    decision: bool
    """score >= the config's model.threshold."""
    model_name: str
    model_version: str
    request_id: str


class PredictResponse(BaseModel):
    request_id: str
    model_name: str
    model_version: str
    threshold: float
    predictions: list[Prediction]


class FeedbackItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(..., min_length=1, max_length=200)
    entity_id: int | str | None = None
    """Which entity of the request (none: every entity of it, or an `instances` row)."""
    index: int | None = Field(None, ge=0)
    """Position in the request, for `instances` rows."""
    label: Annotated[int, Strict()] | Annotated[str, Strict()] | Annotated[bool, Strict()]


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    feedback: list[FeedbackItem] = Field(..., min_length=1)


class FeedbackResponse(BaseModel):
    recorded: int


class ErrorBody(BaseModel):
    """An error of the v1, operations and admin routes: one sentence."""

    detail: str
    unknown_entity_ids: list[int | str] | None = None
    """Every unknown entity of the request (404 only)."""


class OipErrorBody(BaseModel):
    """An error of the Open Inference Protocol routes (`/v2/...`): `error` is the key KServe's
    and Triton's clients read."""

    error: str
    unknown_entity_ids: list[int | str] | None = None
    """Every unknown entity of the request (404 only)."""


class FieldError(BaseModel):
    loc: list[str | int]
    """Where in the request: `body`, then keys and positions."""
    msg: str
    type: str
    input: str
    """The offending value, as short text."""


class ValidationErrorBody(BaseModel):
    """422: every field at fault, and one sentence naming them."""

    detail: list[FieldError]
    message: str


class OipValidationErrorBody(ValidationErrorBody):
    """422 on the `/v2/...` routes: the sentence is also under `error`, where OIP clients
    read it."""

    error: str


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]
    """Protocol extensions this server supports (`binary_tensor_data`)."""


class ModelReady(BaseModel):
    name: str
    version: str | None = None
    """The version asked for (the versioned route only)."""
    ready: bool


class Readiness(BaseModel):
    """What readiness checked; 503 when any part is not ok."""

    ready: bool
    model: dict[str, Any]
    """The served version, its predictor and the last reload error."""
    feature_store: str
    """`ok`, or why the online store does not answer."""
    feature_reads: str
    prediction_log: str
    """`ok`, or why the prediction log takes no lines."""
    prediction_log_pending: int | None = None
    """PostgreSQL log only: records spooled locally, not yet in the database."""
    prediction_log_database: str | None = None
    """PostgreSQL log only: `ok`, or why the database was last not written (readiness
    does not depend on it)."""


class ReloadAnswer(BaseModel):
    outcome: str
    """`swapped`, `unchanged`, `no_alias` (404) or `failed` (502, the old model kept)."""
    version: str | None
    detail: str
    serving: dict[str, Any]


# Open Inference Protocol v2 (REST).


class InferInput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any] | None = None
    """The elements (nested or flat); absent when they come as binary tensor data
    (`parameters.binary_data_size`, with the `Inference-Header-Content-Length` header)."""
    parameters: dict[str, Any] | None = None


class InferOutputRequest(BaseModel):
    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[InferInput] = Field(..., min_length=1)
    outputs: list[InferOutputRequest] | None = None


class InferOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]


class InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str
    outputs: list[InferOutput]


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, Any] = Field(default_factory=dict)
