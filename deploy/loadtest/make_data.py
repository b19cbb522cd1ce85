"""Writes ghz --binary-file request data: protobuf-encoded imagetrust.v1.CheckRequest messages.

    python deploy/loadtest/make_data.py                  # from imagetrust/samples/*.jpg
    python deploy/loadtest/make_data.py photos/*.jpg --out deploy/loadtest/data

For each image, <stem>.bin holds one serialised CheckRequest (ghz -B <stem>.bin sends that
image every call), and mixed.bin holds all of them as count-prefixed (varint length)
messages, which ghz cycles through round-robin: one run over several realistic images.
The bytes are the files exactly as given, never re-encoded (re-encoding destroys the
traces the services analyse). `register` stays false so a load test never fills the
reuse registry with its own sightings.
"""

from __future__ import annotations

import argparse
import io
import pathlib
import sys

from google.protobuf import proto

from imagetrust.v1 import common_pb2, gateway_pb2

REPO = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_IMAGES_DIR = REPO / "imagetrust" / "samples"
DEFAULT_OUT = pathlib.Path(__file__).resolve().parent / "data"
MIXED_NAME = "mixed.bin"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".heic", ".heif")


def check_request(path: pathlib.Path, index: int) -> gateway_pb2.CheckRequest:
    return gateway_pb2.CheckRequest(
        image=common_pb2.Image(data=path.read_bytes(), filename=path.name),
        context=common_pb2.Context(
            seller_id=f"loadtest-seller-{index}", listing_id=f"loadtest-{path.stem}", platform="ghz"
        ),
        register=False,
        client_ref=f"loadtest/{path.name}",
    )


def delimited(messages: list[gateway_pb2.CheckRequest]) -> bytes:
    """Count-prefixed messages (a varint byte length before each), as ghz reads them."""
    out = io.BytesIO()
    for message in messages:
        proto.serialize_length_prefixed(message, out)
    return out.getvalue()


def read_delimited(data: bytes) -> list[gateway_pb2.CheckRequest]:
    """The inverse of delimited(), used by the tests and the Python load generator."""
    stream, messages = io.BytesIO(data), []
    while stream.tell() < len(data):
        message = proto.parse_length_prefixed(gateway_pb2.CheckRequest, stream)
        if message is None:
            raise ValueError(f"truncated length-prefixed message at byte {stream.tell()}")
        messages.append(message)
    return messages


def find_images(paths: list[str]) -> list[pathlib.Path]:
    found: list[pathlib.Path] = []
    for raw in paths or [str(DEFAULT_IMAGES_DIR)]:
        path = pathlib.Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        elif path.is_file():
            found.append(path)
        else:
            raise SystemExit(f"no such image or folder: {path}")
    if not found:
        raise SystemExit("no images found")
    return found


def write_data(images: list[pathlib.Path], out: pathlib.Path) -> list[pathlib.Path]:
    # <stem>.bin: photo.jpg and photo.png (or a/x.jpg and b/x.jpg, or mixed.jpg) would
    # overwrite each other's file, so refuse them before writing anything.
    names = [f"{path.stem}.bin" for path in images]
    clashes = sorted({name for name in names if names.count(name) > 1 or name == MIXED_NAME})
    if clashes:
        raise SystemExit(f"images that would share an output file (rename one): {', '.join(clashes)}")
    out.mkdir(parents=True, exist_ok=True)
    requests = [check_request(path, i) for i, path in enumerate(images)]
    written = []
    for path, request in zip(images, requests):
        target = out / f"{path.stem}.bin"
        target.write_bytes(request.SerializeToString())
        written.append(target)
    mixed = out / MIXED_NAME
    mixed.write_bytes(delimited(requests))
    written.append(mixed)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", help=f"image files or folders (default {DEFAULT_IMAGES_DIR})")
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)
    for path in write_data(find_images(args.images), args.out):
        print(f"{path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
