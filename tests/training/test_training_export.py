"""`python -m training.export` refuses what it cannot ship with one line, installing nothing."""

from __future__ import annotations

import pytest

from training import export


@pytest.mark.parametrize("content", [b"not a checkpoint", None])
def test_a_bad_or_missing_checkpoint_is_a_one_line_exit(tmp_path, content):
    src = tmp_path / "model.pt"
    if content is not None:
        src.write_bytes(content)
    dst = tmp_path / "weights" / "default.pt"
    with pytest.raises(SystemExit) as info:
        export.main([str(src), "--to", str(dst)])
    message = str(info.value.code)
    assert message.startswith("[export] not exported: ") and str(src) in message and "\n" not in message
    assert not dst.exists()
