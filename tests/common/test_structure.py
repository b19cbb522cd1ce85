"""Structure bombs (services/common/structure.py) through the three real servers.

Each reproducer is a small valid-looking file built here with Pillow whose structure
multiplies a decoder's work: progressive scans repeated past the limit (before the fix a
100 KB file of this kind took ~6 s per decode), header segments or fill bytes that Pillow
walks in Python, and a PNG flooded with empty chunks. The gateway refuses them before any
backend is called, each backend refuses them itself, all with RESOURCE_EXHAUSTED; a real
progressive JPEG still gets a verdict, and every server keeps serving.
"""

from __future__ import annotations

import io
import re
import struct
import zlib

import grpc
import numpy as np
import pytest
from PIL import Image

from imagetrust.v1 import (
    common_pb2,
    gateway_pb2,
    gateway_pb2_grpc,
    metadata_pb2,
    metadata_pb2_grpc,
    synthesis_pb2,
    synthesis_pb2_grpc,
)
from services.common import structure
from tests.helpers.checkpoints import make_checkpoint
from tests.helpers.servers import start_server
from tests.metadata.mutations import jpeg_segments

TIMEOUT_S = 30  # seconds per call; each refusal takes milliseconds
SIDE_PX = 256  # pixels: the reproducers' image side


def _photo() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (SIDE_PX, SIDE_PX, 3), dtype=np.uint8))


def _encode(fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    _photo().save(buf, fmt, **params)
    return buf.getvalue()


def progressive() -> bytes:
    return _encode("JPEG", progressive=True, quality=80)


def scan_bomb() -> bytes:
    """The progressive file with its last scan repeated up to one past the scan limit
    (libjpeg decodes each repeat as one more pass over the coefficients). Entropy-coded data
    never holds FF DA (a coded FF is followed by 00), so every FF DA starts a scan."""
    data = progressive()
    starts = [m.start() for m in re.finditer(rb"\xff\xda", data)]
    assert data.endswith(b"\xff\xd9")
    last = data[starts[-1] : -2]
    return data[:-2] + last * (structure.MAX_JPEG_SCANS + 1 - len(starts)) + data[-2:]


def comment_flood() -> bytes:
    """Empty COM segments right after SOI, one more than the header-segment limit."""
    data = _encode("JPEG", quality=80)
    return data[:2] + b"\xff\xfe\x00\x02" * (structure.MAX_JPEG_HEADER_SEGMENTS + 1) + data[2:]


def fill_flood() -> bytes:
    """0xFF fill bytes before the scan marker, one more than the filler limit."""
    data = _encode("JPEG", quality=80)
    sos = next(off for off, code, _ in jpeg_segments(data) if code == 0xDA)
    return data[:sos] + b"\xff" * (structure.MAX_JPEG_HEADER_FILLER + 1) + data[sos:]


def png_chunk_flood() -> bytes:
    """Empty private chunks after IHDR: twice the allowance for the file's size (their own
    12 bytes each raise the allowance by 12/1024 of a chunk)."""
    data = _encode("PNG")
    chunk = struct.pack(">I", 0) + b"prVt" + struct.pack(">I", zlib.crc32(b"prVt"))
    count = 2 * (structure.MIN_PNG_CHUNKS + len(data) // structure.PNG_BYTES_PER_CHUNK)
    after_ihdr = 8 + 25  # signature, then IHDR: length, type, 13 bytes, CRC
    return data[:after_ihdr] + chunk * count + data[after_ihdr:]


BOMBS = {"scans": scan_bomb, "header segments": comment_flood, "fill bytes": fill_flood, "png chunks": png_chunk_flood}


@pytest.fixture(scope="module")
def channels(tmp_path_factory):
    """The three real services (synthesis with a tiny random model), a channel to each."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    make_checkpoint(path, "tiny")
    metadata = start_server("metadata")
    synthesis = start_server(
        "synthesis", model_path=str(path), torch_threads=1, max_queue_delay_ms=1, warmup_iterations=1
    )
    gateway = start_server("gateway", synthesis_addr=synthesis.address, metadata_addr=metadata.address)
    servers = {"gateway": gateway, "metadata": metadata, "synthesis": synthesis}
    opened = {name: server.channel() for name, server in servers.items()}
    yield opened
    for channel in opened.values():
        channel.close()
    for server in (gateway, synthesis, metadata):
        server.stop()


def _calls(channels, data: bytes) -> dict:
    image = common_pb2.Image(data=data)
    return {
        "gateway": lambda: gateway_pb2_grpc.ImageTrustStub(channels["gateway"]).Check(
            gateway_pb2.CheckRequest(image=image), timeout=TIMEOUT_S
        ),
        "metadata": lambda: metadata_pb2_grpc.MetadataAnalyzerStub(channels["metadata"]).Analyze(
            metadata_pb2.AnalyzeRequest(image=image), timeout=TIMEOUT_S
        ),
        "synthesis": lambda: synthesis_pb2_grpc.SynthesisDetectorStub(channels["synthesis"]).Detect(
            synthesis_pb2.DetectRequest(image=image), timeout=TIMEOUT_S
        ),
    }


def test_a_real_progressive_jpeg_is_accepted_everywhere(channels):
    data = progressive()
    assert data.count(b"\xff\xda") >= 6  # Pillow's progressive script, well under the limit
    for name, call in _calls(channels, data).items():
        response = call()
        if name == "gateway":
            assert not response.degraded, list(response.missing)


@pytest.mark.parametrize("kind", list(BOMBS))
def test_structure_bombs_are_refused_by_every_service(channels, kind):
    data = BOMBS[kind]()
    assert len(data) < 2 * 1024 * 1024  # small uploads: the cost was in the structure
    for name, call in _calls(channels, data).items():
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, f"{name}: {err.value.details()}"
        assert "decompression-bomb guard" in err.value.details(), f"{name}: {err.value.details()}"
    for call in _calls(channels, progressive()).values():
        call()  # still serving
