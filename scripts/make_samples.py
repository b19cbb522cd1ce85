"""Builds the demo images in imagetrust/samples/ from ../shared/datasets/exif-samples.

Run once by a developer (the outputs are committed, so users never need ../shared):
    python scripts/make_samples.py
"""

from __future__ import annotations

import io
import pathlib
import shutil

from PIL import Image, ImageFilter

ROOT = pathlib.Path(__file__).resolve().parent.parent
SRC = ROOT.parent / "shared" / "datasets" / "exif-samples" / "jpg"
OUT = ROOT / "imagetrust" / "samples"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    # 1. A camera original, as the camera wrote it (Nikon, with EXIF and GPS).
    shutil.copyfile(SRC / "gps" / "DSCN0010.jpg", OUT / "camera_original.jpg")
    # 2. The kind of copy a fraudster takes from an SNS: resized to a 1080 long edge,
    #    re-encoded at quality 85, every byte of metadata gone.
    phone = Image.open(SRC / "mobile" / "jolla.jpg").convert("RGB")
    phone.thumbnail((1080, 1080), Image.Resampling.LANCZOS)
    phone.save(OUT / "sns_resave.jpg", quality=85)
    # 3. A composite: an object-sized region of another camera's photo (a Canon PowerShot)
    #    pasted, feathered, into the Nikon photo, saved by an editor with the Nikon EXIF kept:
    #    what a seller does to add or swap an object.
    original = Image.open(SRC / "gps" / "DSCN0012.jpg")
    exif = original.info.get("exif", b"")
    base = original.convert("RGB")
    donor = Image.open(SRC / "Canon_PowerShot_S40.jpg").convert("RGB").crop((200, 150, 420, 330))
    mask = Image.new("L", donor.size, 0)
    mask.paste(255, (12, 12, donor.width - 12, donor.height - 12))
    base.paste(donor, (380, 60), mask.filter(ImageFilter.GaussianBlur(6)))
    buf = io.BytesIO()
    base.save(buf, "JPEG", quality=92, exif=exif)
    (OUT / "composite_pasted.jpg").write_bytes(buf.getvalue())
    # 4. A stolen copy of the camera original, as another seller would list it: scaled to
    #    80 %, re-encoded at quality 80, metadata gone (the demo checks it as a second seller).
    stolen = Image.open(OUT / "camera_original.jpg").convert("RGB")
    stolen = stolen.resize((round(stolen.width * 0.8), round(stolen.height * 0.8)), Image.Resampling.LANCZOS)
    stolen.save(OUT / "stolen_copy.jpg", quality=80)
    print(f"wrote {sorted(p.name for p in OUT.glob('*.jpg'))}")


if __name__ == "__main__":
    main()
