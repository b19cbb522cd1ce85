from imagetrust.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DetectRequest(_message.Message):
    __slots__ = ("image", "want_heatmap")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    WANT_HEATMAP_FIELD_NUMBER: _ClassVar[int]
    image: _common_pb2.Image
    want_heatmap: bool
    def __init__(self, image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., want_heatmap: _Optional[bool] = ...) -> None: ...

class Heatmap(_message.Message):
    __slots__ = ("rows", "cols", "scores", "tile_size", "stride", "origin_x", "origin_y")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    TILE_SIZE_FIELD_NUMBER: _ClassVar[int]
    STRIDE_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_X_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_Y_FIELD_NUMBER: _ClassVar[int]
    rows: int
    cols: int
    scores: _containers.RepeatedScalarFieldContainer[float]
    tile_size: int
    stride: int
    origin_x: int
    origin_y: int
    def __init__(self, rows: _Optional[int] = ..., cols: _Optional[int] = ..., scores: _Optional[_Iterable[float]] = ..., tile_size: _Optional[int] = ..., stride: _Optional[int] = ..., origin_x: _Optional[int] = ..., origin_y: _Optional[int] = ...) -> None: ...

class DetectResponse(_message.Message):
    __slots__ = ("score", "global_score", "local_score", "heatmap", "model_version", "model_arch", "preprocessing", "device", "width", "height", "placeholder", "uncertain", "valid_patches", "method")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_SCORE_FIELD_NUMBER: _ClassVar[int]
    LOCAL_SCORE_FIELD_NUMBER: _ClassVar[int]
    HEATMAP_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_ARCH_FIELD_NUMBER: _ClassVar[int]
    PREPROCESSING_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    PLACEHOLDER_FIELD_NUMBER: _ClassVar[int]
    UNCERTAIN_FIELD_NUMBER: _ClassVar[int]
    VALID_PATCHES_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    score: float
    global_score: float
    local_score: float
    heatmap: Heatmap
    model_version: str
    model_arch: str
    preprocessing: str
    device: str
    width: int
    height: int
    placeholder: bool
    uncertain: bool
    valid_patches: int
    method: str
    def __init__(self, score: _Optional[float] = ..., global_score: _Optional[float] = ..., local_score: _Optional[float] = ..., heatmap: _Optional[_Union[Heatmap, _Mapping]] = ..., model_version: _Optional[str] = ..., model_arch: _Optional[str] = ..., preprocessing: _Optional[str] = ..., device: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., placeholder: _Optional[bool] = ..., uncertain: _Optional[bool] = ..., valid_patches: _Optional[int] = ..., method: _Optional[str] = ...) -> None: ...
