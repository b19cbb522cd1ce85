"""Decoding and analysing in many threads at once leaves process-wide state as it was.

The servers run these functions in thread pools (metadata: asyncio.to_thread; synthesis: the
decode pool). `warnings.catch_warnings()` around Pillow calls saved and restored the global
filter list per call, and those saves and restores raced between threads: an "ignore every
warning" filter stayed installed for the rest of the process, silencing all warnings
(deprecations included) in every later request.
"""

from __future__ import annotations

import threading
import warnings

from services.common import imaging
from services.common.errors import ImageTrustError
from services.metadata import analysis, fingerprints
from tests.metadata.corpus import corpus_files

THREADS = 8  # concurrent callers: more than the services' default pools
ROUNDS = 1  # passes over the corpus per thread
MAX_BYTES = 64 * 1024 * 1024  # bytes, above every corpus file
MAX_PIXELS = 120_000_000  # pixels, the services' default
# bytes: the corpus's small files (most of it) keep the test to seconds; the race needs many
# calls overlapping, not large ones.
SMALL_FILE_BYTES = 300_000


CALLS = (  # every entry point that opens uploaded bytes (Pillow, our marker and EXIF walks)
    fingerprints.image_unique_id,
    lambda data: analysis.analyze(data, MAX_BYTES, MAX_PIXELS),
    lambda data: analysis.analyze_header(data, MAX_BYTES, MAX_PIXELS),
    lambda data: imaging.decode_rgb(data, MAX_PIXELS),
    lambda data: fingerprints.compute(data, MAX_PIXELS),
)


def _work(files: list[bytes], errors: list[BaseException]) -> None:
    try:
        for _ in range(ROUNDS):
            for data in files:
                for call in CALLS:
                    try:
                        call(data)
                    except ImageTrustError:
                        pass  # broken corpus files are refused: their expected answer
    except BaseException as exc:  # noqa: BLE001 - reported by the test thread below
        errors.append(exc)


def test_threads_leave_the_warning_filters_as_they_were(exif_samples):
    files = [p.read_bytes() for p in corpus_files(exif_samples) if p.stat().st_size < SMALL_FILE_BYTES]
    assert len(files) >= 30
    before = list(warnings.filters)
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_work, args=(files, errors)) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "analysis threads did not finish"
    assert errors == []
    assert list(warnings.filters) == before
