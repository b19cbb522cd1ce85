"""The metadata service's cost against its two floors, measured side by side in one run.

    .venv/bin/python -m bench.bench_metadata [--quick] [--repeat N] [--phone-files N]

1. The decode floor. Every pixel check needs at least one entropy decode of the photo, so
   the whole answer (`pipeline.inspect`: every check on, pHash, pixel key, no registry
   round trip) is timed against one full colour decode of the same file
   (`cv2.imdecode(IMREAD_COLOR)`, libjpeg-turbo, one thread). Per file, the two alternate
   --repeat times (interleaved, so both see the same machine load) and each keeps its
   best; the ratio printed is the median over files of analysis / decode. Sets: the 7+ MP
   camera JPEGs of exif-samples and 12 MP phone-like JPEGs (4032x3024, Samsung/Apple EXIF
   and a 160x120 EXIF thumbnail, made on the fly).
2. The header floor. ExifTool reads only the header: the header path
   (`analysis.analyze_header`: every check that needs no pixel decode, no fingerprints)
   against `exiftool -fast -j` in batch mode (one Perl process for all files, start-up
   included, since that is what a batch caller pays), on the exif-samples corpus. Ours runs
   in-process on bytes already in memory, as the service receives them, single-threaded.
   Best of --repeat runs each, interleaved. Also printed: the header path plus the file's
   SHA-256 (the first fingerprint the service computes after it), for the ratio of a caller
   that wants both.

Also printed: under each decode-floor set, the shares of the shared grey decode and of the
near-copy content keys (reuse.content.describe) in it; files/s of the analysis pool with one
worker and with one per CPU (the GIL
is released in the decode and hashes); what the pixel identity key costs with each
candidate function and input on a 12 MP photo; and what one 12 MP request allocates at its
peak (tracemalloc: numpy and Python memory; libjpeg's own working memory is outside it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import pathlib
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import tracemalloc

import blake3
import cv2
import numpy as np
from PIL import Image

from services.common.errors import ImageTrustError
from services.metadata import fingerprints, pixel_key
from services.metadata.analysis import DEFAULT_BUDGET, analyze_header
from services.metadata.decoded import DecodedUpload, DecodeNeeds
from services.metadata.jpeg import parse
from services.metadata.pipeline import inspect
from services.metadata.registry.model import Sighting

REPO = pathlib.Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "datasets" / "exif-samples"
# The service's plan for a JPEG: full-resolution luminance (double compression) and views.
_ANSWER_NEEDS = fingerprints.NEEDS | DecodeNeeds(full=True)
NOT_IMAGES = {"README", "README.md", "README.rst", "dump"}
MAX_BYTES = 64 << 20  # bytes
MAX_PIXELS = 120_000_000  # pixels
LARGE_MIN_PIXELS = 7_000_000  # pixels: "7+ MP camera JPEGs"
PHONE_SIZE = (4032, 3024)  # pixels: a 12 MP phone photo
THUMB_SIZE = (160, 120)  # pixels: the EXIF thumbnail phones write for 4:3 photos


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


def large_camera_jpegs(files: list[pathlib.Path]) -> list[pathlib.Path]:
    """The corpus JPEGs of 7 MP and more that decode whole (corrupted.jpg does not)."""
    out = []
    for path in files:
        data = path.read_bytes()
        frame = parse(data).frame if data[:2] == b"\xff\xd8" else None
        if frame is None or frame.width * frame.height < LARGE_MIN_PIXELS:
            continue
        try:
            with Image.open(io.BytesIO(data)) as img:
                img.draft("L", (img.width // 8, img.height // 8))
                img.load()
        except Exception:  # noqa: BLE001 - a file the reference decoder refuses has no decode floor
            continue
        out.append(path)
    return out


def _full_decode(data: bytes) -> None:
    cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)


def _whole_answer(data: bytes, now: dt.datetime) -> int:
    done = inspect(
        data, MAX_BYTES, MAX_PIXELS, budget=DEFAULT_BUDGET, now=now, sighting=Sighting(), register=False, registry=None
    )
    return done.decodes


def decode_floor(label: str, paths: list[pathlib.Path], repeat: int) -> None:
    now = dt.datetime.now(dt.UTC)
    ratios, rows = [], []
    for path in paths:
        data = path.read_bytes()
        t_decode = t_answer = float("inf")
        decodes = _whole_answer(data, now)  # warm: the file's pages and lazily built tables
        for _ in range(repeat):
            start = time.perf_counter()
            _full_decode(data)
            t_decode = min(t_decode, time.perf_counter() - start)
            start = time.perf_counter()
            _whole_answer(data, now)
            t_answer = min(t_answer, time.perf_counter() - start)
        ratios.append(t_answer / t_decode)
        rows.append((path.name, t_decode, t_answer, decodes))
    print(f"{label}: {len(paths)} files")
    for name, t_decode, t_answer, decodes in rows:
        print(
            f"  {name[:34]:34s} decode {t_decode * 1000:7.1f} ms  analyze {t_answer * 1000:7.1f} ms"
            f"  {t_answer / t_decode:5.2f}x  ({decodes} decode)"
        )
    print(
        f"  median analyze / one full decode: {statistics.median(ratios):.2f}x"
        f"  (min {min(ratios):.2f}x, max {max(ratios):.2f}x)"
    )


def answer_parts(paths: list[pathlib.Path], repeat: int) -> None:
    """Where the whole answer's time goes, as fractions of one full decode (median over
    files, best of `repeat`, interleaved): the shared grey decode the pixel checks and
    fingerprints read, and the near-copy content keys (reuse.content.describe) made from
    its displayed grey view; the rest is the header path, the whole-file hashes, the
    double-compression projection and the pHash."""
    from services.metadata.reuse.content import describe

    shares: dict[str, list[float]] = {"shared grey decode": [], "content keys (reuse)": []}
    for path in paths:
        data = path.read_bytes()
        structure = parse(data)
        frame = structure.frame
        assert frame is not None  # large_camera_jpegs / phone_jpegs: readable frame headers
        best = dict.fromkeys(["decode", *shares], float("inf"))
        for _ in range(repeat):
            start = time.perf_counter()
            _full_decode(data)
            best["decode"] = min(best["decode"], time.perf_counter() - start)
            upload = DecodedUpload(data, "jpeg", frame.width, frame.height, _ANSWER_NEEDS, structure=structure)
            start = time.perf_counter()
            upload.luma()
            best["shared grey decode"] = min(best["shared grey decode"], time.perf_counter() - start)
            shown = np.ascontiguousarray(upload.displayed(upload.grey_view(min(fingerprints.DRAFT_SIZE))))
            start = time.perf_counter()
            describe(shown)
            best["content keys (reuse)"] = min(best["content keys (reuse)"], time.perf_counter() - start)
        for part in shares:
            shares[part].append(best[part] / best["decode"])
    print("  of which, / one full decode: " + ", ".join(f"{k} {statistics.median(v):.2f}x" for k, v in shares.items()))


def time_header_path(datas: list[bytes], *, with_sha256: bool = False) -> float:
    now = dt.datetime.now(dt.UTC)
    start = time.perf_counter()
    for data in datas:
        try:
            analyze_header(data, MAX_BYTES, MAX_PIXELS, now=now)
        except ImageTrustError:
            pass  # a refused file still counts as answered
        if with_sha256:
            hashlib.sha256(data).digest()
    return time.perf_counter() - start


def time_exiftool(exiftool: str, paths: list[pathlib.Path]) -> float:
    start = time.perf_counter()
    out = subprocess.run([exiftool, "-fast", "-j", *map(str, paths)], capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if not out.stdout.startswith(b"["):
        sys.exit(f"exiftool failed: {out.stderr[:300]!r}")
    return elapsed


def header_floor(exiftool: str, paths: list[pathlib.Path], repeat: int) -> None:
    datas = [p.read_bytes() for p in paths]
    n = len(paths)
    t_et = t_ours = t_sha = float("inf")
    for _ in range(repeat):  # interleaved, best of `repeat` each
        t_et = min(t_et, time_exiftool(exiftool, paths))
        t_ours = min(t_ours, time_header_path(datas))
        t_sha = min(t_sha, time_header_path(datas, with_sha256=True))
    print(f"header path, exif-samples corpus: {n} files, {sum(map(len, datas)) / 1e6:.1f} MB")
    print(f"  exiftool -fast -j (batch)   {n / t_et:8.1f} files/s  ({t_et * 1000 / n:6.2f} ms/file)")
    for label, t in (("ours, header path", t_ours), ("  + the file's SHA-256", t_sha)):
        print(f"  {label:26s}  {n / t:8.1f} files/s  ({t * 1000 / n:6.2f} ms/file)  ratio {t_et / t:5.2f}x")


def _best_ms(step, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def key_costs(data: bytes, repeat: int) -> None:
    """The pixel identity key's candidates on one photo: function x input."""
    rgb = np.ascontiguousarray(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    pixels = rgb.data  # the buffer the hashes read
    structure = parse(data)
    rows = [
        ("sha256 over RGB8 pixels (the legacy key)", lambda: hashlib.sha256(pixels).digest()),
        ("blake3 over RGB8 pixels, 1 thread", lambda: blake3.blake3(pixels).digest()),
        (
            "blake3 over RGB8 pixels, all threads",
            lambda: blake3.blake3(pixels, max_threads=blake3.blake3.AUTO).digest(),
        ),
        ("blake3 over the coded image (the key)", lambda: pixel_key.jpeg_coded(data, structure)),
        ("  the marker parse it reuses (the analysis')", lambda: parse(data)),
        ("sha256 over the file bytes", lambda: hashlib.sha256(data).digest()),
    ]
    try:
        import xxhash

        rows.insert(3, ("xxh3-128 over RGB8 pixels (not cryptographic)", lambda: xxhash.xxh3_128(pixels).digest()))
    except ImportError:
        pass  # a dev dependency: the row is informative only
    print(
        f"pixel key candidates, {rgb.shape[1]}x{rgb.shape[0]} photo ({rgb.nbytes / 1e6:.0f} MB of RGB8,"
        f" {len(data) / 1e6:.1f} MB file); full colour decode {_best_ms(lambda: _full_decode(data), repeat):.1f} ms"
    )
    for label, step in rows:
        print(f"  {label:46s} {_best_ms(step, repeat):7.2f} ms")


def pool_scaling(paths: list[pathlib.Path], repeat: int) -> None:
    """Files/s through a pool of one worker vs one per CPU, as the service runs them, and the
    process's CPU seconds per wall second: the decode and hashes release the GIL, so with N
    workers the process runs on up to N CPUs at once (on a machine busy with other work the
    files/s gain is capped by the CPU share it gets; the CPU/wall ratio still shows it)."""
    import concurrent.futures
    import os

    datas = [p.read_bytes() for p in paths]
    now = dt.datetime.now(dt.UTC)
    cpus = len(os.sched_getaffinity(0))
    wall = {1: float("inf"), cpus: float("inf")}
    busy = {1: 0.0, cpus: 0.0}
    for _ in range(repeat):  # interleaved, best of `repeat` each
        for workers in (1, cpus):
            with concurrent.futures.ThreadPoolExecutor(workers) as pool:
                start, cpu_start = time.perf_counter(), time.process_time()
                list(pool.map(lambda d: _whole_answer(d, now), datas))
                elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            if elapsed < wall[workers]:
                wall[workers], busy[workers] = elapsed, cpu / elapsed
    one, many = len(datas) / wall[1], len(datas) / wall[cpus]
    print(
        f"analysis pool on the 12 MP phone JPEGs: 1 worker {one:.1f} files/s ({busy[1]:.2f} CPU s per s),"
        f" {cpus} workers {many:.1f} files/s ({busy[cpus]:.2f} CPU s per s): {many / one:.2f}x files/s"
    )


def peak_memory(data: bytes) -> None:
    now = dt.datetime.now(dt.UTC)
    tracemalloc.start()
    _whole_answer(data, now)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"peak allocation of one 12 MP request (tracemalloc, besides its {len(data) / 1e6:.1f} MB of bytes):"
        f" {peak / 1e6:.1f} MB"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and phone files (well under a minute)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per side; the best counts")
    parser.add_argument("--phone-files", type=int, default=8, help="12 MP JPEGs to generate")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat, args.phone_files = 2, 2
    exiftool = shutil.which("exiftool")
    if exiftool is None:
        sys.exit("exiftool is required: apt-get install libimage-exiftool-perl")
    files = corpus_files()  # first: a missing corpus is a one-line exit, not the warm-up's traceback
    cv2.setNumThreads(1)
    # Warm imports and lazily loaded tables once, outside the timings.
    _whole_answer(CORPUS.joinpath("jpg", "Canon_40D.jpg").read_bytes(), dt.datetime.now(dt.UTC))
    print(f"bench_metadata: repeat={args.repeat} (best of), single thread, bytes in memory for ours")
    header_floor(exiftool, files, args.repeat)
    large = large_camera_jpegs(files)
    decode_floor("7+ MP camera JPEGs (exif-samples)", large, args.repeat)
    answer_parts(large, args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        phones = phone_jpegs(pathlib.Path(tmp), args.phone_files)
        decode_floor("12 MP phone JPEGs with EXIF thumbnails", phones, args.repeat)
        answer_parts(phones, args.repeat)
        pool_scaling(phones, max(1, args.repeat // 2))
        key_costs(phones[0].read_bytes(), args.repeat)
        peak_memory(phones[0].read_bytes())


if __name__ == "__main__":
    main()
