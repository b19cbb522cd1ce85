"""The data tables (devices, editing software, platform sizes), loaded once from YAML.

They live in services/metadata/data/ so that adding a phone or an editor is a data change
reviewed on its own, not a code change.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import pathlib

import yaml

DATA_DIR = pathlib.Path(__file__).resolve().parent / "data"
# Firmware rounds crops to multiples of 8 or 16 pixels (Samsung's 16:9 is 4000x2252).
SIZE_TOLERANCE_PX = 4  # pixels per side


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


@dataclasses.dataclass(frozen=True)
class Device:
    make: str
    models: tuple[str, ...]
    model_prefixes: tuple[str, ...]
    released: dt.date | None
    sizes: tuple[tuple[int, int], ...]  # landscape, crops included
    ijg_tables: bool = False  # the firmware writes libjpeg's standard tables

    def name(self) -> str:
        return f"{self.make} {self.models[0] if self.models else self.model_prefixes[0] + '*'}"

    def is_native(self, width: int, height: int) -> bool:
        w, h = max(width, height), min(width, height)
        return any(abs(w - sw) <= SIZE_TOLERANCE_PX and abs(h - sh) <= SIZE_TOLERANCE_PX for sw, sh in self.sizes)


def _crops(sizes: list[list[int]], crops: list[str]) -> list[tuple[int, int]]:
    out = [(max(w, h), min(w, h)) for w, h in sizes]
    for w, h in list(out):
        if w * 3 != h * 4:
            continue  # crops apply to 4:3 sensor outputs only
        if "16:9" in crops:
            out.append((w, round(w * 9 / 16)))
        if "1:1" in crops:
            out.append((h, h))
    return list(dict.fromkeys(out))


def _released(text: object) -> dt.date | None:
    if not text:
        return None
    year, month = str(text).split("-")[:2]
    return dt.date(int(year), int(month), 1)


@functools.cache
def devices() -> tuple[Device, ...]:
    raw = yaml.safe_load((DATA_DIR / "devices.yaml").read_text())
    default_crops = raw.get("phone_crops", [])
    out = []
    for entry in raw["devices"]:
        crops = entry.get("crops", default_crops)
        out.append(
            Device(
                make=str(entry["make"]),
                models=tuple(str(m) for m in entry.get("models", ())),
                model_prefixes=tuple(str(m) for m in entry.get("model_prefixes", ())),
                released=_released(entry.get("released")),
                sizes=tuple(_crops(entry["sizes"], crops)),
                ijg_tables=bool(entry.get("ijg_tables", False)),
            )
        )
    return tuple(out)


@functools.cache
def _device_index() -> tuple[dict[str, list[Device]], list[tuple[str, Device]]]:
    exact: dict[str, list[Device]] = {}
    prefixes: list[tuple[str, Device]] = []
    for device in devices():
        for m in device.models:
            exact.setdefault(_norm(m), []).append(device)
        prefixes += [(_norm(p), device) for p in device.model_prefixes]
    return exact, prefixes


@functools.lru_cache(maxsize=4096)
def find_device(make: str, model: str) -> Device | None:
    """The device entry for an EXIF Make/Model, or None ("unknown", never a mismatch)."""
    if not model:
        return None
    make_n, model_n = _norm(make), _norm(model)
    exact, prefixes = _device_index()
    candidates = exact.get(model_n, []) + [d for p, d in prefixes if model_n.startswith(p)]
    for device in candidates:
        if not make_n or _norm(device.make) in make_n:
            return device
    return None


@dataclasses.dataclass(frozen=True)
class Editor:
    name: str
    patterns: tuple[str, ...]


@functools.cache
def editors() -> tuple[Editor, ...]:
    raw = yaml.safe_load((DATA_DIR / "software.yaml").read_text())
    return tuple(Editor(e["name"], tuple(_norm(p) for p in e["patterns"])) for e in raw["editors"])


@functools.lru_cache(maxsize=4096)
def find_editor(text: str) -> str:
    """The editor's name when `text` names known editing software, else ""."""
    text_n = _norm(text)
    if not text_n:
        return ""
    for editor in editors():
        if any(p in text_n for p in editor.patterns):
            return editor.name
    return ""


@dataclasses.dataclass(frozen=True)
class PlatformSizes:
    long_edges: frozenset[int]
    exact_sizes: frozenset[tuple[int, int]]

    def matches(self, width: int, height: int) -> str:
        """Why (width, height) looks like a platform output, or ""."""
        if (max(width, height), min(width, height)) in self.exact_sizes:
            return f"size {width}x{height} observed from SNS/web pipelines"
        if max(width, height) in self.long_edges:
            return f"long edge {max(width, height)} px is a common SNS/web resize target"
        return ""


@functools.cache
def platform_sizes() -> PlatformSizes:
    raw = yaml.safe_load((DATA_DIR / "platforms.yaml").read_text())
    return PlatformSizes(
        frozenset(int(e) for e in raw["long_edges"]),
        frozenset((max(w, h), min(w, h)) for w, h in raw["exact_sizes"]),
    )
