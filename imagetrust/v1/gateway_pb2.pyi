from imagetrust.v1 import common_pb2 as _common_pb2
from imagetrust.v1 import metadata_pb2 as _metadata_pb2
from imagetrust.v1 import synthesis_pb2 as _synthesis_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CheckOptions(_message.Message):
    __slots__ = ("want_heatmap", "skip_synthesis", "skip_metadata", "budget_ms")
    WANT_HEATMAP_FIELD_NUMBER: _ClassVar[int]
    SKIP_SYNTHESIS_FIELD_NUMBER: _ClassVar[int]
    SKIP_METADATA_FIELD_NUMBER: _ClassVar[int]
    BUDGET_MS_FIELD_NUMBER: _ClassVar[int]
    want_heatmap: bool
    skip_synthesis: bool
    skip_metadata: bool
    budget_ms: int
    def __init__(self, want_heatmap: _Optional[bool] = ..., skip_synthesis: _Optional[bool] = ..., skip_metadata: _Optional[bool] = ..., budget_ms: _Optional[int] = ...) -> None: ...

class CheckRequest(_message.Message):
    __slots__ = ("image", "context", "register", "options", "client_ref")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    REGISTER_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_REF_FIELD_NUMBER: _ClassVar[int]
    image: _common_pb2.Image
    context: _common_pb2.Context
    register: bool
    options: CheckOptions
    client_ref: str
    def __init__(self, image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., context: _Optional[_Union[_common_pb2.Context, _Mapping]] = ..., register: _Optional[bool] = ..., options: _Optional[_Union[CheckOptions, _Mapping]] = ..., client_ref: _Optional[str] = ...) -> None: ...

class CheckResponse(_message.Message):
    __slots__ = ("request_id", "decision", "risk", "reasons", "synthesis", "metadata", "degraded", "missing", "model_version", "policy_version", "client_ref", "error")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    RISK_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    SYNTHESIS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    CLIENT_REF_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    decision: _common_pb2.Decision
    risk: float
    reasons: _containers.RepeatedCompositeFieldContainer[_common_pb2.Finding]
    synthesis: _synthesis_pb2.DetectResponse
    metadata: _metadata_pb2.AnalyzeResponse
    degraded: bool
    missing: _containers.RepeatedScalarFieldContainer[str]
    model_version: str
    policy_version: str
    client_ref: str
    error: _common_pb2.ItemError
    def __init__(self, request_id: _Optional[str] = ..., decision: _Optional[_Union[_common_pb2.Decision, str]] = ..., risk: _Optional[float] = ..., reasons: _Optional[_Iterable[_Union[_common_pb2.Finding, _Mapping]]] = ..., synthesis: _Optional[_Union[_synthesis_pb2.DetectResponse, _Mapping]] = ..., metadata: _Optional[_Union[_metadata_pb2.AnalyzeResponse, _Mapping]] = ..., degraded: _Optional[bool] = ..., missing: _Optional[_Iterable[str]] = ..., model_version: _Optional[str] = ..., policy_version: _Optional[str] = ..., client_ref: _Optional[str] = ..., error: _Optional[_Union[_common_pb2.ItemError, _Mapping]] = ...) -> None: ...

class CheckBatchRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[CheckRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[CheckRequest, _Mapping]]] = ...) -> None: ...

class CheckBatchResponse(_message.Message):
    __slots__ = ("responses",)
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[CheckResponse]
    def __init__(self, responses: _Optional[_Iterable[_Union[CheckResponse, _Mapping]]] = ...) -> None: ...
