"""`python -m training.export` refuses what it cannot ship with one line, installing nothing."""

from __future__ import annotations

import pytest

from services.synthesis.checkpoint import load_checkpoint
from tests.helpers.checkpoints import make_consistency_checkpoint, make_splicebuster_checkpoint
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


@pytest.mark.parametrize("arch", ["consistency", "splicebuster"])
def test_consistency_checkpoints_are_checked_and_shipped(tmp_path, arch):
    src = tmp_path / f"{arch}.pt"
    if arch == "consistency":
        make_consistency_checkpoint(src, placeholder=False)
    else:
        make_splicebuster_checkpoint(src)
    dst = tmp_path / "weights" / "default.pt"
    export.main([str(src), "--to", str(dst)])
    assert load_checkpoint(dst).consistency == load_checkpoint(src).consistency


def test_a_placeholder_consistency_checkpoint_is_refused(tmp_path):
    src = tmp_path / "c.pt"
    make_consistency_checkpoint(src)
    with pytest.raises(SystemExit, match="placeholder"):
        export.main([str(src), "--to", str(tmp_path / "default.pt")])
