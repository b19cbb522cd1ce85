"""bench_metadata's own guard: run where the corpus is absent, it says so in one line."""

from __future__ import annotations

import pytest

from bench import bench_metadata
from tests.conftest import require_tool


def test_a_missing_corpus_is_a_one_line_exit(monkeypatch, tmp_path):
    require_tool("exiftool", "apt-get install libimage-exiftool-perl (scripts/setup.sh does this)")
    missing = tmp_path / "exif-samples"
    monkeypatch.setattr(bench_metadata, "CORPUS", missing)
    with pytest.raises(SystemExit) as info:
        bench_metadata.main(["--quick"])
    assert info.value.code == f"corpus missing: {missing}"
