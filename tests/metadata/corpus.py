"""The exif-samples corpus as a list of image files (READMEs and the text dump left out)."""

from __future__ import annotations

import pathlib

NOT_IMAGES = {"README", "README.md", "README.rst", "dump"}


def corpus_files(root: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name not in NOT_IMAGES)
