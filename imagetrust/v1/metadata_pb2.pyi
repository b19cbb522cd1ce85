import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from imagetrust.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MatchKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MATCH_KIND_UNSPECIFIED: _ClassVar[MatchKind]
    UNIQUE_ID: _ClassVar[MatchKind]
    SAME_BYTES: _ClassVar[MatchKind]
    SAME_PIXELS: _ClassVar[MatchKind]
    NEAR_DUPLICATE: _ClassVar[MatchKind]
MATCH_KIND_UNSPECIFIED: MatchKind
UNIQUE_ID: MatchKind
SAME_BYTES: MatchKind
SAME_PIXELS: MatchKind
NEAR_DUPLICATE: MatchKind

class AnalyzeRequest(_message.Message):
    __slots__ = ("image", "context", "register")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    REGISTER_FIELD_NUMBER: _ClassVar[int]
    image: _common_pb2.Image
    context: _common_pb2.Context
    register: bool
    def __init__(self, image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., context: _Optional[_Union[_common_pb2.Context, _Mapping]] = ..., register: _Optional[bool] = ...) -> None: ...

class ImageInfo(_message.Message):
    __slots__ = ("format", "width", "height", "size_bytes", "mode")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    format: str
    width: int
    height: int
    size_bytes: int
    mode: str
    def __init__(self, format: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., size_bytes: _Optional[int] = ..., mode: _Optional[str] = ...) -> None: ...

class ExifSummary(_message.Message):
    __slots__ = ("make", "model", "software", "datetime", "datetime_original", "datetime_digitized", "exif_width", "exif_height", "orientation", "gps_present", "image_unique_id", "lens_model", "tag_count", "thumbnail_present")
    MAKE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_FIELD_NUMBER: _ClassVar[int]
    DATETIME_FIELD_NUMBER: _ClassVar[int]
    DATETIME_ORIGINAL_FIELD_NUMBER: _ClassVar[int]
    DATETIME_DIGITIZED_FIELD_NUMBER: _ClassVar[int]
    EXIF_WIDTH_FIELD_NUMBER: _ClassVar[int]
    EXIF_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    ORIENTATION_FIELD_NUMBER: _ClassVar[int]
    GPS_PRESENT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_UNIQUE_ID_FIELD_NUMBER: _ClassVar[int]
    LENS_MODEL_FIELD_NUMBER: _ClassVar[int]
    TAG_COUNT_FIELD_NUMBER: _ClassVar[int]
    THUMBNAIL_PRESENT_FIELD_NUMBER: _ClassVar[int]
    make: str
    model: str
    software: str
    datetime: str
    datetime_original: str
    datetime_digitized: str
    exif_width: int
    exif_height: int
    orientation: int
    gps_present: bool
    image_unique_id: str
    lens_model: str
    tag_count: int
    thumbnail_present: bool
    def __init__(self, make: _Optional[str] = ..., model: _Optional[str] = ..., software: _Optional[str] = ..., datetime: _Optional[str] = ..., datetime_original: _Optional[str] = ..., datetime_digitized: _Optional[str] = ..., exif_width: _Optional[int] = ..., exif_height: _Optional[int] = ..., orientation: _Optional[int] = ..., gps_present: _Optional[bool] = ..., image_unique_id: _Optional[str] = ..., lens_model: _Optional[str] = ..., tag_count: _Optional[int] = ..., thumbnail_present: _Optional[bool] = ...) -> None: ...

class JpegInfo(_message.Message):
    __slots__ = ("markers", "progressive", "subsampling", "estimated_quality", "standard_tables", "trailing_bytes", "has_xmp", "has_icc", "has_photoshop_irb")
    MARKERS_FIELD_NUMBER: _ClassVar[int]
    PROGRESSIVE_FIELD_NUMBER: _ClassVar[int]
    SUBSAMPLING_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_QUALITY_FIELD_NUMBER: _ClassVar[int]
    STANDARD_TABLES_FIELD_NUMBER: _ClassVar[int]
    TRAILING_BYTES_FIELD_NUMBER: _ClassVar[int]
    HAS_XMP_FIELD_NUMBER: _ClassVar[int]
    HAS_ICC_FIELD_NUMBER: _ClassVar[int]
    HAS_PHOTOSHOP_IRB_FIELD_NUMBER: _ClassVar[int]
    markers: _containers.RepeatedScalarFieldContainer[str]
    progressive: bool
    subsampling: str
    estimated_quality: int
    standard_tables: bool
    trailing_bytes: int
    has_xmp: bool
    has_icc: bool
    has_photoshop_irb: bool
    def __init__(self, markers: _Optional[_Iterable[str]] = ..., progressive: _Optional[bool] = ..., subsampling: _Optional[str] = ..., estimated_quality: _Optional[int] = ..., standard_tables: _Optional[bool] = ..., trailing_bytes: _Optional[int] = ..., has_xmp: _Optional[bool] = ..., has_icc: _Optional[bool] = ..., has_photoshop_irb: _Optional[bool] = ...) -> None: ...

class Fingerprints(_message.Message):
    __slots__ = ("sha256", "pixel_sha256", "perceptual_hash", "perceptual_algorithm", "image_unique_id", "pixel_key", "pixel_key_algorithm")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    PIXEL_SHA256_FIELD_NUMBER: _ClassVar[int]
    PERCEPTUAL_HASH_FIELD_NUMBER: _ClassVar[int]
    PERCEPTUAL_ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    IMAGE_UNIQUE_ID_FIELD_NUMBER: _ClassVar[int]
    PIXEL_KEY_FIELD_NUMBER: _ClassVar[int]
    PIXEL_KEY_ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    pixel_sha256: str
    perceptual_hash: str
    perceptual_algorithm: str
    image_unique_id: str
    pixel_key: str
    pixel_key_algorithm: str
    def __init__(self, sha256: _Optional[str] = ..., pixel_sha256: _Optional[str] = ..., perceptual_hash: _Optional[str] = ..., perceptual_algorithm: _Optional[str] = ..., image_unique_id: _Optional[str] = ..., pixel_key: _Optional[str] = ..., pixel_key_algorithm: _Optional[str] = ...) -> None: ...

class Sighting(_message.Message):
    __slots__ = ("seller_id", "listing_id", "conversation_id", "platform", "seen_at")
    SELLER_ID_FIELD_NUMBER: _ClassVar[int]
    LISTING_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    SEEN_AT_FIELD_NUMBER: _ClassVar[int]
    seller_id: str
    listing_id: str
    conversation_id: str
    platform: str
    seen_at: _timestamp_pb2.Timestamp
    def __init__(self, seller_id: _Optional[str] = ..., listing_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., platform: _Optional[str] = ..., seen_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RegistryMatch(_message.Message):
    __slots__ = ("kind", "distance", "sighting")
    KIND_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    SIGHTING_FIELD_NUMBER: _ClassVar[int]
    kind: MatchKind
    distance: int
    sighting: Sighting
    def __init__(self, kind: _Optional[_Union[MatchKind, str]] = ..., distance: _Optional[int] = ..., sighting: _Optional[_Union[Sighting, _Mapping]] = ...) -> None: ...

class RegistryResult(_message.Message):
    __slots__ = ("available", "backend", "matches", "registered", "error")
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    available: bool
    backend: str
    matches: _containers.RepeatedCompositeFieldContainer[RegistryMatch]
    registered: bool
    error: str
    def __init__(self, available: _Optional[bool] = ..., backend: _Optional[str] = ..., matches: _Optional[_Iterable[_Union[RegistryMatch, _Mapping]]] = ..., registered: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class AnalyzeResponse(_message.Message):
    __slots__ = ("image", "exif", "jpeg", "findings", "risk", "fingerprints", "registry", "analyzer_version")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    EXIF_FIELD_NUMBER: _ClassVar[int]
    JPEG_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    RISK_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINTS_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_FIELD_NUMBER: _ClassVar[int]
    ANALYZER_VERSION_FIELD_NUMBER: _ClassVar[int]
    image: ImageInfo
    exif: ExifSummary
    jpeg: JpegInfo
    findings: _containers.RepeatedCompositeFieldContainer[_common_pb2.Finding]
    risk: float
    fingerprints: Fingerprints
    registry: RegistryResult
    analyzer_version: str
    def __init__(self, image: _Optional[_Union[ImageInfo, _Mapping]] = ..., exif: _Optional[_Union[ExifSummary, _Mapping]] = ..., jpeg: _Optional[_Union[JpegInfo, _Mapping]] = ..., findings: _Optional[_Iterable[_Union[_common_pb2.Finding, _Mapping]]] = ..., risk: _Optional[float] = ..., fingerprints: _Optional[_Union[Fingerprints, _Mapping]] = ..., registry: _Optional[_Union[RegistryResult, _Mapping]] = ..., analyzer_version: _Optional[str] = ...) -> None: ...
