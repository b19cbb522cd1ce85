"""What the analysis says about every corpus file, as a reviewed snapshot.

    .venv/bin/python -m tests.metadata.findings_snapshot          # compare, print the changes
    .venv/bin/python -m tests.metadata.findings_snapshot --write  # rewrite the snapshot

For each file of exif-samples and camera-photos: the findings (code, severity, evidence) with
every check on, the finding codes of the header path (analysis.analyze_header), and the EXIF fields
read (the thumbnail as its length and SHA-256). The analysis' clock is fixed, so the date
rules answer the same every day. tests/metadata/test_findings_snapshot.py fails on any
difference: a change to the parsers or rules that moves an answer on a real file is either a
bug or deliberate, and then the snapshot is rewritten with this command, the diff reviewed
and the change documented (docs/metadata.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import pathlib
import sys

from services.common.errors import ImageTrustError
from services.metadata.analysis import DEFAULT_BUDGET, analyze, analyze_header
from services.metadata.exif import ExifData
from tests.helpers.paths import SHARED
from tests.metadata.corpus import corpus_files

SNAPSHOT = pathlib.Path(__file__).resolve().parent / "data" / "findings_snapshot.json"
DATASETS = ("exif-samples", "camera-photos")
NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)  # the analysis' "now" (upload time)
MAX_BYTES = 64 << 20  # bytes: the service's default byte limit
MAX_PIXELS = 120_000_000  # pixels: the service's default pixel limit


def _exif_fields(exif: ExifData) -> dict[str, object]:
    fields = dataclasses.asdict(exif)
    thumb = fields.pop("thumbnail")
    fields["thumbnail"] = f"{len(thumb)} bytes sha256:{hashlib.sha256(thumb).hexdigest()[:16]}" if thumb else ""
    fields["camera_fields"] = list(fields["camera_fields"])
    return fields


def describe(data: bytes) -> dict[str, object]:
    """The snapshot entry of one file."""
    try:
        full = analyze(data, MAX_BYTES, MAX_PIXELS, budget=DEFAULT_BUDGET, now=NOW)
        header = analyze_header(data, MAX_BYTES, MAX_PIXELS, now=NOW)
    except ImageTrustError as exc:
        return {"refused": f"{type(exc).__name__}: {exc}"}
    return {
        "findings": [[f.code, f.severity.name, dict(sorted(f.evidence.items()))] for f in full.findings],
        "header_codes": [f.code for f in header.findings],
        "exif": _exif_fields(full.exif),
    }


def snapshot(shared: pathlib.Path = SHARED) -> dict[str, dict[str, object]]:
    out = {}
    for name in DATASETS:
        root = shared / name
        if not root.exists():
            raise FileNotFoundError(f"test data missing: {root}")
        for path in corpus_files(root):
            out[path.relative_to(shared).as_posix()] = describe(path.read_bytes())
    return out


def differences(expected: dict[str, dict[str, object]], actual: dict[str, dict[str, object]]) -> list[str]:
    """One line per file and part that differs."""
    lines = []
    for name in sorted(set(expected) | set(actual)):
        old, new = expected.get(name), actual.get(name)
        if old is None or new is None:
            lines.append(f"{name}: {'new file' if old is None else 'file gone'}")
            continue
        for part in sorted(set(old) | set(new)):
            if old.get(part) != new.get(part):
                lines.append(f"{name} {part}:\n  was {json.dumps(old.get(part))}\n  now {json.dumps(new.get(part))}")
    return lines


def load() -> dict[str, dict[str, object]]:
    return json.loads(SNAPSHOT.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the snapshot file")
    args = parser.parse_args(argv)
    actual = snapshot()
    if args.write:
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(actual, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
        print(f"wrote {SNAPSHOT} ({len(actual)} files)")
        return 0
    lines = differences(load(), actual)
    print("\n".join(lines) or f"no differences ({len(actual)} files)")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
