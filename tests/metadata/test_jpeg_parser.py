"""The JPEG marker parser on Pillow-made files and hand-broken ones."""

import pytest
from PIL import Image

from services.common.errors import TooLarge
from services.common.structure import MAX_JPEG_HEADER_SEGMENTS, MAX_JPEG_SCANS, check_jpeg, check_jpeg_walked
from services.metadata import jpeg, quant
from tests.metadata.builders import jpeg_bytes, pillow_exif, textured
from tests.metadata.corpus import corpus_files
from tests.metadata.mutations import jpeg_segments, mutants

GUARD_SEED = 20240601  # fixed: a failure names a mutant anyone can rebuild
GUARD_MUTANTS_PER_FILE = 40  # mutants per corpus JPEG (truncations, flips, segment fields)


def test_marker_sequence_tables_and_frame():
    data = jpeg_bytes(textured(64, 48), 75, exif=pillow_exif(make="Apple"), icc_profile=b"\x00" * 200)
    s = jpeg.parse(data)
    assert s.markers[0] == "SOI" and s.markers[-1] == "EOI"
    assert {"APP1", "APP2", "DQT", "SOF0", "DHT", "SOS"} <= set(s.markers)
    assert s.frame is not None and (s.frame.width, s.frame.height) == (64, 48)
    assert s.subsampling == "4:2:0" and not s.progressive
    assert s.exif is not None and s.exif[:4] in (b"II*\x00", b"MM\x00*")
    assert s.icc == b"\x00" * 200
    luma, _chroma = s.luma_chroma_tables()
    assert tuple(quant.scaled_table(quant.STD_LUMA, 75)) == luma
    assert s.trailing_bytes == 0 and not s.truncated and not s.anomalies


def test_subsampling_progressive_and_gray():
    img = textured(64, 48)
    assert jpeg.parse(jpeg_bytes(img, 90, subsampling=0)).subsampling == "4:4:4"
    assert jpeg.parse(jpeg_bytes(img, 90, subsampling=1)).subsampling == "4:2:2"
    assert jpeg.parse(jpeg_bytes(img, 90, progressive=True)).progressive
    gray = jpeg.parse(jpeg_bytes(img.convert("L"), 90))
    assert gray.subsampling == "gray" and gray.luma_chroma_tables()[1] is None


def test_trailing_bytes_after_eoi():
    data = jpeg_bytes(textured(32, 32)) + b"hidden payload" * 10
    s = jpeg.parse(data)
    assert s.trailing_bytes == 140 and s.eoi_offset == len(data) - 140


def test_truncated_and_garbage_never_raise():
    data = jpeg_bytes(textured(64, 64))
    for cut in (3, 10, 100, len(data) // 2, len(data) - 1):
        s = jpeg.parse(data[:cut])
        assert s.truncated, cut
    assert jpeg.parse(b"not a jpeg").anomalies == ["no SOI marker"]
    # A segment length pointing past the end of the file.
    bad = data[:2] + b"\xff\xe1\xff\xff" + b"\x00" * 10
    s = jpeg.parse(bad)
    assert s.truncated and "past the end" in s.anomalies[0]
    # Stray bytes between segments are skipped and reported.
    s = jpeg.parse(data[:2] + b"junk" + data[2:])
    assert s.markers[-1] == "EOI" and "stray bytes" in s.anomalies[0]


def test_photoshop_irb_writer():
    writer = "Adobe Photoshop".encode("utf-16-be")
    info = b"\x00\x00\x00\x01\x01" + len("Adobe Photoshop").to_bytes(4, "big") + writer + b"\x00" * 8
    block = b"8BIM" + b"\x04\x21" + b"\x00\x00" + len(info).to_bytes(4, "big") + info
    assert jpeg.photoshop_writer(block) == "Adobe Photoshop"
    assert jpeg.photoshop_writer(b"8BIM\x04\x21\x00\x00\xff\xff\xff\xff") == ""


def test_pillow_agrees_on_dimensions():
    img = textured(123, 77)
    s = jpeg.parse(jpeg_bytes(img))
    assert (s.frame.width, s.frame.height) == Image.new("RGB", (123, 77)).size


def _guard_answer(check, *args) -> str:
    try:
        check(*args)
    except TooLarge as exc:
        return str(exc)
    return "accepted"


def _guard_cases(exif_samples) -> list[tuple[str, bytes]]:
    """Corpus JPEGs, their mutants, and the structure bombs at and over each limit."""
    cases = []
    for path in corpus_files(exif_samples):
        data = path.read_bytes()
        if data[:3] == b"\xff\xd8\xff":
            name = path.relative_to(exif_samples).as_posix()
            cases.append((name, data))
            cases += list(mutants(name, data, GUARD_SEED))[:GUARD_MUTANTS_PER_FILE]
    one_scan = jpeg_bytes(textured(64, 48), 80)
    prog = jpeg_bytes(textured(64, 48), 80, progressive=True)
    last = prog[prog.rindex(b"\xff\xda") : -2]  # entropy data never holds FF DA
    scans = prog.count(b"\xff\xda")
    for total in (MAX_JPEG_SCANS, MAX_JPEG_SCANS + 1):
        cases.append((f"{total} scans", prog[:-2] + last * (total - scans) + prog[-2:]))
    before = next(off for off, code, _ in jpeg_segments(one_scan) if code == 0xDA)
    segments = jpeg.parse(one_scan).header_segments
    for total in (MAX_JPEG_HEADER_SEGMENTS, MAX_JPEG_HEADER_SEGMENTS + 1):
        flood = b"\xff\xfe\x00\x02" * (total - segments)
        cases.append((f"{total} header segments", one_scan[:before] + flood + one_scan[before:]))
    return cases


@pytest.mark.slow
def test_the_walks_counts_give_the_structure_guards_answer(exif_samples):
    """The analysis guards a JPEG from its marker walk's counts when the walk took the
    guard's path (structure.check_jpeg_walked): the answer must be check_jpeg's."""
    cases = _guard_cases(exif_samples)
    originals = {p.relative_to(exif_samples).as_posix() for p in corpus_files(exif_samples)}
    compared, refused, originals_walked = 0, set(), 0
    for name, data in cases:
        s = jpeg.parse(data)
        if not s.walked_as_guard:
            continue
        compared += 1
        expected = _guard_answer(check_jpeg, data)
        assert _guard_answer(check_jpeg_walked, s.header_segments, s.scans) == expected, name
        if expected != "accepted":
            refused.add(name)
        originals_walked += name in originals
    print(f"\n{compared} of {len(cases)} inputs walked on the guard's path; refused: {sorted(refused)}")
    assert refused == {f"{MAX_JPEG_SCANS + 1} scans", f"{MAX_JPEG_HEADER_SEGMENTS + 1} header segments"}
    assert compared >= len(cases) // 4  # most mutants are cut before EOI: the guard's own walk
    # Every corpus JPEG that ends in EOI without stray bytes takes the one-pass path.
    assert originals_walked >= sum(1 for name, _ in cases if name in originals) - 3
