"""Logs stay one JSON object per line on a real server process, even when a decoder warns."""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import subprocess
import sys

import grpc
from PIL import Image

from imagetrust.suite import wait_serving
from imagetrust.v1 import common_pb2, metadata_pb2, metadata_pb2_grpc
from tests.helpers.paths import REPO
from tests.helpers.ports import free_port

HUGE_COUNT = 10_000_000  # values: far past the end of a 1 KB file


def _tiff_with_overrunning_tag() -> bytes:
    """A valid TIFF whose ImageDescription claims more bytes than the file has: Pillow warns
    "Tag data larger than file" on every read of its tags (a metadata call reads them)."""
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 20, 30)).save(buf, "TIFF", description="a description that needs an offset")
    data = bytearray(buf.getvalue())
    ifd = struct.unpack_from("<I", data, 4)[0]
    for i in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * i
        if struct.unpack_from("<H", data, entry)[0] == 270:  # ImageDescription
            struct.pack_into("<I", data, entry + 4, HUGE_COUNT)
    return bytes(data)


def test_decoder_warnings_do_not_break_json_lines(tmp_path):
    port = free_port()
    env = {**os.environ, "IMAGETRUST_REGISTRY_PATH": str(tmp_path / "registry.sqlite3"), "PYTHONWARNINGS": ""}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.metadata",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--metrics-port",
            "-1",
            "--log-format",
            "json",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_serving(port, proc, timeout_s=60)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            analyze = metadata_pb2_grpc.MetadataAnalyzerStub(channel).Analyze
            for _ in range(3):
                r = analyze(
                    metadata_pb2.AnalyzeRequest(image=common_pb2.Image(data=_tiff_with_overrunning_tag())), timeout=30
                )
                assert (r.image.format, r.image.width, r.image.height) == ("tiff", 32, 32)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        lines = [line for line in proc.stderr.read().decode().splitlines() if line.strip()]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert lines, "the server logged nothing at all"
    for line in lines:
        entry = json.loads(line)  # raises on a raw warning or traceback line
        assert {"ts", "level", "service", "msg"} <= set(entry)
    assert not any("Tag data larger than file" in line for line in lines)


def test_other_warnings_are_logged_as_json():
    """configure() routes non-decoder warnings into logging, so they keep the format; Pillow's
    complaints about broken files are filtered by importing services.common.imaging."""
    code = (
        "import warnings; from services.common import imaging, logging as log; log.configure('metadata'); "
        "warnings.warn('something the operator should see', DeprecationWarning, stacklevel=1); "
        "warnings.warn_explicit('Tag data larger than file. Skipping tag 270', UserWarning, "
        "'TiffImagePlugin.py', 946, module='PIL.TiffImagePlugin')"
    )
    out = subprocess.run(
        [sys.executable, "-W", "default", "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    lines = [json.loads(line) for line in out.stderr.splitlines() if line.strip()]
    assert [(e["logger"], e["level"]) for e in lines] == [("py.warnings", "WARNING")]
    assert "something the operator should see" in lines[0]["msg"]
