"""Files per second of our metadata analysis vs ExifTool's batch mode, in the same run.

    .venv/bin/python -m bench.bench_metadata [--quick] [--repeat N] [--phone-files N]

Two file sets: the exif-samples corpus (../shared/datasets/exif-samples) and 12 MP
phone-like JPEGs (4032x3024, Samsung/Apple EXIF written with Pillow's Image.Exif) made on
the fly. ExifTool runs in batch mode (`exiftool -fast -j f1 f2 ...`: one Perl process for
all files, its fastest documented mode) and we time its whole run, start-up included,
since that is what a batch caller pays. Ours runs in-process on bytes already in memory,
as the service receives them, single-threaded. Both sides take the best of --repeat runs.
Also printed: our analysis with the pixel checks off (header rules only), to show what
the thumbnail and double-compression checks cost.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import pathlib
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

from services.common.errors import ImageTrustError
from services.metadata.analysis import PixelBudget, analyze

REPO = pathlib.Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "datasets" / "exif-samples"
NOT_IMAGES = {"README", "README.md", "README.rst", "dump"}
MAX_BYTES = 64 << 20  # bytes
MAX_PIXELS = 120_000_000  # pixels
PHONE_SIZE = (4032, 3024)  # pixels: a 12 MP phone photo
THUMB_SIZE = (160, 120)  # pixels: the EXIF thumbnail phones write for 4:3 photos
DEFAULT_BUDGET = PixelBudget(4_000_000, 24_000_000)  # the service defaults (MetadataConfig)
NO_PIXEL_CHECKS = PixelBudget(0, 0)


def corpus_files() -> list[pathlib.Path]:
    if not CORPUS.exists():
        sys.exit(f"corpus missing: {CORPUS}")
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name not in NOT_IMAGES)


def with_thumbnail(exif: bytes, thumb: bytes) -> bytes:
    """Pillow's EXIF ("Exif\\0\\0" + TIFF) with an IFD1 JPEG thumbnail chained after IFD0, as
    every phone writes one; Pillow's writer cannot."""
    tiff = bytearray(exif[6:])
    order = {b"II": "<", b"MM": ">"}[bytes(tiff[:2])]
    ifd0 = struct.unpack_from(order + "I", tiff, 4)[0]
    entries = struct.unpack_from(order + "H", tiff, ifd0)[0]
    ifd1 = len(tiff) + len(tiff) % 2  # IFDs start on a word boundary
    tiff += b"\0" * (ifd1 - len(tiff))
    struct.pack_into(order + "I", tiff, ifd0 + 2 + 12 * entries, ifd1)  # IFD0's next-IFD link
    thumb_at = ifd1 + 2 + 3 * 12 + 4
    tiff += struct.pack(order + "H", 3)
    tiff += struct.pack(order + "HHIHH", 0x0103, 3, 1, 6, 0)  # Compression: 6 = JPEG thumbnail
    tiff += struct.pack(order + "HHII", 0x0201, 4, 1, thumb_at)  # JPEGInterchangeFormat (offset)
    tiff += struct.pack(order + "HHII", 0x0202, 4, 1, len(thumb))  # JPEGInterchangeFormatLength
    tiff += struct.pack(order + "I", 0) + thumb  # no IFD2
    return exif[:6] + bytes(tiff)


def phone_jpegs(directory: pathlib.Path, count: int) -> list[pathlib.Path]:
    """12 MP JPEGs with phone EXIF (make, model, dates, sizes, GPS, unique id) and an EXIF
    thumbnail, as phones write them (the thumbnail comparison decodes the photo at 1/8)."""
    rng = np.random.default_rng(0)
    w, h = PHONE_SIZE
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 128 + 70 * np.sin(x / 97) * np.cos(y / 61)
    phones = [("samsung", "SM-G991B"), ("Apple", "iPhone 13 Pro")]
    paths = []
    for i in range(count):
        if i % 4 == 0:  # new pixels every 4 files: drawing 12 MP of noise costs more than the EXIF
            noise = rng.normal(0, 6, (h, w, 1)).astype(np.float32)
            rgb = np.clip(np.stack([base, base * 0.9 + 20, 250 - base], axis=-1) + noise, 0, 255)
            img = Image.fromarray(rgb.astype(np.uint8), "RGB")
        make, model = phones[i % 2]
        exif = Image.Exif()
        exif[0x010F], exif[0x0110], exif[0x0131] = make, model, "G991BXXU3AUE1" if make == "samsung" else "15.2"
        exif[0x0132], exif[0x0112] = "2022:03:04 12:00:00", 1
        sub = exif.get_ifd(0x8769)
        sub[0x9003] = sub[0x9004] = "2022:03:04 12:00:00"
        sub[0xA002], sub[0xA003], sub[0xA420] = w, h, f"{i:032x}"
        sub[0x829A], sub[0x829D] = 0.01, 1.8
        exif.get_ifd(0x8825).update({1: "N", 2: (37.0, 33.0, 0.0), 3: "E", 4: (126.0, 58.0, 0.0)})
        if i % 4 == 0:
            thumb = io.BytesIO()
            img.resize(THUMB_SIZE, Image.Resampling.BOX).save(thumb, "JPEG", quality=80)
        path = directory / f"phone_{i:03d}.jpg"
        img.save(path, "JPEG", quality=92, exif=with_thumbnail(exif.tobytes(), thumb.getvalue()))
        paths.append(path)
    return paths


def time_ours(datas: list[bytes], budget: PixelBudget, repeat: int) -> float:
    now = dt.datetime.now(dt.UTC)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for data in datas:
            try:
                analyze(data, MAX_BYTES, MAX_PIXELS, budget=budget, now=now)
            except ImageTrustError:
                pass  # a refused file still counts as answered
        best = min(best, time.perf_counter() - start)
    return best


def time_exiftool(exiftool: str, paths: list[pathlib.Path], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        out = subprocess.run([exiftool, "-fast", "-j", *map(str, paths)], capture_output=True, check=False)
        best = min(best, time.perf_counter() - start)
        if not out.stdout.startswith(b"["):
            sys.exit(f"exiftool failed: {out.stderr[:300]!r}")
    return best


def compare(label: str, exiftool: str, paths: list[pathlib.Path], repeat: int) -> None:
    datas = [p.read_bytes() for p in paths]
    n = len(paths)
    # Interleaved, best of `repeat` each: on a shared machine the load changes from one
    # second to the next, and both sides should see the same conditions.
    t_et = t_full = t_header = float("inf")
    for _ in range(repeat):
        t_et = min(t_et, time_exiftool(exiftool, paths, 1))
        t_full = min(t_full, time_ours(datas, DEFAULT_BUDGET, 1))
        t_header = min(t_header, time_ours(datas, NO_PIXEL_CHECKS, 1))
    print(f"{label}: {n} files, {sum(map(len, datas)) / 1e6:.1f} MB")
    print(f"  exiftool -fast -j (batch)   {n / t_et:8.1f} files/s  ({t_et * 1000 / n:6.2f} ms/file)")
    print(f"  ours, full analysis         {n / t_full:8.1f} files/s  ({t_full * 1000 / n:6.2f} ms/file)"
          f"  ratio {t_et / t_full:5.2f}x")
    print(f"  ours, pixel checks off      {n / t_header:8.1f} files/s  ({t_header * 1000 / n:6.2f} ms/file)"
          f"  ratio {t_et / t_header:5.2f}x")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and phone files (well under a minute)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per side; the best counts")
    parser.add_argument("--phone-files", type=int, default=20, help="12 MP JPEGs to generate")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat, args.phone_files = 1, 4
    exiftool = shutil.which("exiftool")
    if exiftool is None:
        sys.exit("exiftool is required: apt-get install libimage-exiftool-perl")
    files = corpus_files()  # first: a missing corpus is a one-line exit, not the warm-up's traceback
    # Warm imports and lazily loaded tables once, outside the timings.
    analyze(CORPUS.joinpath("jpg", "Canon_40D.jpg").read_bytes(), MAX_BYTES, MAX_PIXELS)
    print(f"bench_metadata: repeat={args.repeat} (best of), single thread, bytes in memory for ours")
    compare("exif-samples corpus", exiftool, files, args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        compare("12 MP phone JPEGs", exiftool, phone_jpegs(pathlib.Path(tmp), args.phone_files), args.repeat)


if __name__ == "__main__":
    main()
