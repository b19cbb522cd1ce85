"""One decode per upload, shared by every pixel check and fingerprint.

An upload's pixel work (double-compression statistics, thumbnail comparison, perceptual
hash, and whatever other consumer a request has) takes its pixels from one
``DecodedUpload``. What is decoded is planned once from ``DecodeNeeds``, the union of what
the request's checks declared, at the cheapest scale and colour that serves them all:

- a JPEG whose checks need only grey pixels (ours: the double-compression histograms, the
  thumbnail correlation and pHash all work on luminance) gets libjpeg's Y plane without
  the chroma IDCT, upsampling and colour conversion (Pillow ``draft("L")``): about half the
  cost of a full colour decode; at full resolution when a check needs the 8x8 grid, else
  DCT-scaled (1/2, 1/4, 1/8) to the smallest size every view needs;
- a JPEG some consumer needs in colour gets one colour decode (OpenCV, libjpeg-turbo) and
  its luminance is derived from it (BT.601, within 1 level of the decoder's Y plane);
- any other format is decoded whole once (Pillow), in colour and in grey.

A request for something the plan did not cover is still answered, by another decode,
counted in ``decodes`` (tests assert 1): declare needs up front instead.

Pixels are as stored (EXIF orientation not applied); ``displayed`` turns a view the way a
viewer shows it. Arrays handed out are shared and read-only. A decode failure is kept and
raised again to each caller, so a corrupt file is decoded (and fails) once.
"""

from __future__ import annotations

import dataclasses
import io
import math

import cv2
import numpy as np
from PIL import Image

from services.common.errors import ImageTrustError, InvalidImage
from services.common.imaging import to_rgb
from services.metadata import jpeg
from services.metadata.jpeg import JpegStructure

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 weights (JPEG's Y)
_REDUCED = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}
_REDUCED_GREY = {
    1: cv2.IMREAD_GRAYSCALE,
    2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
    4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
    8: cv2.IMREAD_REDUCED_GRAYSCALE_8,
}
_ORIENT_TRANSFORMS = {  # EXIF orientation -> numpy steps that show the stored pixels upright
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: np.swapaxes(a, 0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.swapaxes(a[::-1, ::-1], 0, 1),
    8: lambda a: np.rot90(a, 1),
}


@dataclasses.dataclass(frozen=True)
class DecodeNeeds:
    """What the request's consumers need; ``|`` combines two consumers' needs."""

    full: bool = False  # full resolution (the 8x8 grid, or a full-resolution consumer)
    colour: bool = False  # RGB rather than luminance only
    min_side: int = 0  # pixels: each downscaled view must keep both sides at least this long

    def __or__(self, other: DecodeNeeds) -> DecodeNeeds:
        return DecodeNeeds(self.full or other.full, self.colour or other.colour, max(self.min_side, other.min_side))


def jpeg_scale(width: int, height: int, min_side: int) -> int:
    """The largest of libjpeg's 1/1, 1/2, 1/4, 1/8 scales keeping both sides >= min_side
    (Pillow's draft rule, which its scaled decodes follow)."""
    if min_side <= 0:
        return 8
    ratio = min(width // min_side, height // min_side)
    return next(s for s in (8, 4, 2, 1) if s <= max(ratio, 1))


class DecodedUpload:
    """The decoded pixels of one upload; see the module docstring. Not thread-safe: one
    request's checks run on one thread."""

    def __init__(
        self, data: bytes, fmt: str, width: int, height: int, needs: DecodeNeeds, structure: JpegStructure | None = None
    ) -> None:
        """structure: the JPEG's marker parse when the caller has it (saves a pass over the file)."""
        self.data = data
        self._structure = structure
        self.format = fmt
        self.width, self.height = width, height  # stored size from the header
        self.needs = needs
        self.decodes = 0
        self._orientation = 1  # as Pillow reads it (ImageOps.exif_transpose), set by the decode
        self._grey: np.ndarray | None = None  # at self._grey_scale
        self._grey_scale = 0
        self._rgb: np.ndarray | None = None  # at self._rgb_scale
        self._rgb_scale = 0
        self._error: ImageTrustError | None = None
        self._views: dict[tuple[str, int], np.ndarray] = {}

    # --- what consumers call -------------------------------------------------------------
    def luma(self) -> np.ndarray:
        """Full-resolution grey (H, W) uint8, as stored."""
        return self._grey_at(1)

    def rgb(self) -> np.ndarray:
        """Full-resolution colour (H, W, 3) uint8 RGB, as stored."""
        return self._rgb_at(1)

    def grey_view(self, min_side: int) -> np.ndarray:
        """Grey reduced by the largest power-of-two factor (up to 8) keeping both sides >=
        min_side: what was decoded when that is already small enough, else its box average."""
        return self._view("grey", min_side)

    def colour_view(self, min_side: int) -> np.ndarray:
        """Like grey_view, in RGB."""
        return self._view("rgb", min_side)

    @property
    def orientation(self) -> int:
        """EXIF orientation (1-8) as Pillow reads it, the tag ImageOps.exif_transpose follows."""
        self.decode()
        return self._orientation

    def displayed(self, pixels: np.ndarray) -> np.ndarray:
        """pixels turned as the EXIF orientation says a viewer shows them (a strided view,
        not a copy: callers that need contiguous memory copy it once)."""
        turn = _ORIENT_TRANSFORMS.get(self.orientation)
        return turn(pixels) if turn else pixels

    # --- planning and decoding -------------------------------------------------------------
    def decode(self) -> None:
        """The one planned decode; consumers' calls do it on first use."""
        if self._grey is not None or self._rgb is not None or self._error is not None:
            return
        scale = (
            1 if self.needs.full or self.format != "jpeg" else jpeg_scale(self.width, self.height, self.needs.min_side)
        )
        if self.format != "jpeg":
            self._decode_pillow_whole()
        elif self.needs.colour:
            self._decode_jpeg_colour(scale)
        else:
            self._decode_jpeg_grey(scale)

    def _grey_at(self, scale: int) -> np.ndarray:
        self.decode()
        self._raise_if_failed()
        if self._grey is not None and self._grey_scale <= scale:
            return self._grey
        if self._rgb is not None and self._rgb_scale <= scale:
            self._grey = _readonly(cv2.cvtColor(self._rgb, cv2.COLOR_RGB2GRAY))
            self._grey_scale = self._rgb_scale
            return self._grey
        self._decode_jpeg_grey(scale)
        self._raise_if_failed()
        return self._grey  # type: ignore[return-value]

    def _rgb_at(self, scale: int) -> np.ndarray:
        self.decode()
        self._raise_if_failed()
        if self._rgb is not None and self._rgb_scale <= scale:
            return self._rgb
        self._decode_jpeg_colour(scale) if self.format == "jpeg" else self._decode_pillow_whole()
        self._raise_if_failed()
        return self._rgb  # type: ignore[return-value]

    def _view(self, kind: str, min_side: int) -> np.ndarray:
        return self._view_at(kind, jpeg_scale(self.width, self.height, min_side))

    def _view_at(self, kind: str, scale: int) -> np.ndarray:
        """The view at 1/scale: the decode itself when it was made at that scale, else a 2x
        box average of the view at 1/(scale/2). One pyramid per upload, so a view is the
        same whichever consumer asked first, and each level reads a quarter of the last."""
        key = (kind, scale)
        if key in self._views:
            return self._views[key]
        base = self._grey_at(scale) if kind == "grey" else self._rgb_at(scale)
        have = self._grey_scale if kind == "grey" else self._rgb_scale
        finer = base if scale <= have else self._view_at(kind, scale // 2)
        h, w = finer.shape[:2]
        if scale <= have or h < 2 or w < 2:
            view = finer
        else:
            # A 2x2 box average, as libjpeg's DCT scaling averages. An odd last row or column
            # is left out: OpenCV's exact-halving path is ~20x faster than its general area
            # filter (24 ms on a 9 MP luminance of odd height), and one pixel is nothing to
            # views made for 32x32 comparisons.
            even = finer[: max(2, h - h % 2), : max(2, w - w % 2)]
            view = _readonly(cv2.resize(even, (even.shape[1] // 2, even.shape[0] // 2), interpolation=cv2.INTER_AREA))
        self._views[key] = view
        return view

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _decode_jpeg_grey(self, scale: int) -> None:
        """libjpeg's Y plane (no chroma IDCT, no colour conversion), DCT-scaled by 1/scale:
        OpenCV straight into an array for the files it decodes as Pillow would, Pillow for
        the rest (CMYK/YCCK and Adobe-transformed files, files without EOI, 12-bit)."""

        def run() -> None:
            if self._cv2_safe(grey=True):
                flags = _REDUCED_GREY[scale] | cv2.IMREAD_IGNORE_ORIENTATION
                grey = cv2.imdecode(np.frombuffer(self.data, np.uint8), flags)
                if grey is not None and grey.ndim == 2 and grey.shape == _scaled(self.height, self.width, scale):
                    self._orientation = _jpeg_orientation(self.data)
                    self._grey, self._grey_scale = _readonly(grey), scale
                    return
            with Image.open(io.BytesIO(self.data)) as img:
                self._orientation = _orientation(img)
                side = (max(1, self.width // scale), max(1, self.height // scale))
                img.draft("L", side if scale > 1 else img.size)
                img.load()
                self._grey = _readonly(np.asarray(img if img.mode == "L" else img.convert("L")))
            self._grey_scale = _scale_of(self.width, self._grey.shape[1])

        self._run(run)

    def _decode_jpeg_colour(self, scale: int) -> None:
        """OpenCV straight into an array (no copy out of Pillow's image memory), for the common
        8-bit YCbCr JPEG; Pillow for the rest (CMYK/YCCK, grey, files OpenCV would
        silently fill in)."""

        def run() -> None:
            flags = _REDUCED[scale] | cv2.IMREAD_IGNORE_ORIENTATION
            bgr = cv2.imdecode(np.frombuffer(self.data, np.uint8), flags) if self._cv2_safe(grey=False) else None
            if bgr is None or bgr.ndim != 3 or bgr.shape[:2] != _scaled(self.height, self.width, scale):
                with Image.open(io.BytesIO(self.data)) as img:
                    self._orientation = _orientation(img)
                    if scale > 1:
                        img.draft("RGB", (max(1, self.width // scale), max(1, self.height // scale)))
                    img.load()
                    self._rgb = _readonly(np.asarray(to_rgb(img)))
                self._rgb_scale = _scale_of(self.width, self._rgb.shape[1])
                return
            self._orientation = _jpeg_orientation(self.data)
            self._rgb = _readonly(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            self._rgb_scale = scale

        self._run(run)

    def _decode_pillow_whole(self) -> None:
        def run() -> None:
            with Image.open(io.BytesIO(self.data)) as img:
                self._orientation = _orientation(img)
                img.load()
                self._grey = _readonly(np.asarray(img if img.mode == "L" else img.convert("L")))
                self._rgb = _readonly(np.asarray(to_rgb(img)))
            self._grey_scale = self._rgb_scale = 1

        self._run(run)

    @property
    def structure(self) -> JpegStructure | None:
        """A JPEG's marker parse (jpeg.parse), made once; None for other formats."""
        if self._structure is None and self.format == "jpeg":
            self._structure = jpeg.parse(self.data)
        return self._structure

    def _cv2_safe(self, grey: bool) -> bool:
        """OpenCV decodes as Pillow does: a whole 8-bit YCbCr (or, for grey, 1-component) file.
        A file without EOI is Pillow's error ("truncated") where OpenCV would fill it in."""
        structure = self.structure
        assert structure is not None  # JPEG only
        frame = structure.frame
        return not (
            structure.truncated
            or structure.eoi_offset < 0
            or structure.adobe_app14
            or frame is None
            or frame.precision != 8
            or len(frame.components) not in ((1, 3) if grey else (3,))
        )

    def _run(self, step) -> None:
        self.decodes += 1
        try:
            step()
        except ImageTrustError as exc:
            self._error = exc
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - third-party decoders raise anything
            self._error = InvalidImage(
                f"cannot decode the {self.format} image (truncated or corrupt?): {type(exc).__name__}: {exc}"
            )
            self._error.__cause__ = exc


def _scaled(height: int, width: int, scale: int) -> tuple[int, int]:
    return math.ceil(height / scale), math.ceil(width / scale)  # libjpeg rounds scaled sizes up


def _scale_of(width: int, decoded_width: int) -> int:
    """The DCT scale a decode used (libjpeg rounds scaled sizes up)."""
    return max(1, round(width / max(1, decoded_width)))


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr.flags.writeable = False
    return arr


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block only loses the orientation
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _jpeg_orientation(data: bytes) -> int:
    with Image.open(io.BytesIO(data)) as img:
        return _orientation(img)


__all__ = ["DecodeNeeds", "DecodedUpload", "jpeg_scale"]
