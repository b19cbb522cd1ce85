"""The analysis' answers on every real corpus file equal the reviewed snapshot
(tests/metadata/findings_snapshot.py says how it is made and when to rewrite it)."""

from __future__ import annotations

import pytest

from tests.helpers.paths import SHARED, require_dataset
from tests.metadata import findings_snapshot


@pytest.mark.slow
def test_findings_and_exif_fields_equal_the_snapshot():
    for name in findings_snapshot.DATASETS:
        require_dataset(SHARED / name)
    expected = findings_snapshot.load()
    actual = findings_snapshot.snapshot()
    assert len(actual) >= 190 and sum("findings" in entry for entry in actual.values()) >= 189
    lines = findings_snapshot.differences(expected, actual)
    assert not lines, (
        "analysis answers moved on real files; if deliberate, rewrite the snapshot with "
        "`python -m tests.metadata.findings_snapshot --write`, review the diff and document it:\n" + "\n".join(lines)
    )
