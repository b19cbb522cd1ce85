"""Predictor precision on CPU: float32 unless bf16 is asked for; bf16 only where native."""

from __future__ import annotations

import pytest
import torch

from services.synthesis.checkpoint import load_checkpoint
from services.synthesis.predictor import Predictor, cpu_bf16_supported, resolve_precision

from .conftest import make_checkpoint

CPU = torch.device("cpu")


def test_cpu_auto_and_fp32_stay_float32():
    # "auto" must not move scores on the CPUs the shipped model was calibrated on.
    assert resolve_precision("auto", CPU) is None
    assert resolve_precision("fp32", CPU) is None


def test_cpu_fp16_is_refused_with_a_clear_message():
    with pytest.raises(RuntimeError, match="fp16 is CUDA-only"):
        resolve_precision("fp16", CPU)


def test_cpu_bf16_is_native_or_refused():
    if cpu_bf16_supported():
        assert resolve_precision("bf16", CPU) is torch.bfloat16
    else:
        with pytest.raises(RuntimeError, match="needs native bf16"):
            resolve_precision("bf16", CPU)


def test_cpu_bf16_forward_tracks_float32(tmp_path):
    """Where the CPU has native bf16: same checkpoint, same inputs, bf16 logits come back
    float32, channels_last was used, and the probabilities stay within bf16's rounding of the
    float32 ones. Elsewhere: the bf16 predictor is refused at construction."""
    make_checkpoint(tmp_path / "paper_cnn.pt", "paper_cnn")
    ckpt = load_checkpoint(tmp_path / "paper_cnn.pt")  # as the service reads it
    if not cpu_bf16_supported():
        # Machines of one kind differ in CPU features: where bf16 is not native, the
        # predictor must refuse it at construction rather than emulate it slowly.
        with pytest.raises(RuntimeError, match="needs native bf16"):
            Predictor(ckpt, CPU, "bf16")
        assert Predictor(ckpt, CPU, "fp32").precision_name == "fp32"
        return
    fp32, bf16 = Predictor(ckpt, CPU, "fp32"), Predictor(ckpt, CPU, "bf16")
    assert (fp32.precision_name, bf16.precision_name) == ("fp32", "bf16")
    assert bf16.channels_last and not fp32.channels_last
    torch.manual_seed(0)
    inputs = [torch.randn(3, 64, 64) for _ in range(8)]
    a, b = fp32.forward(inputs), bf16.forward(inputs)
    assert b.dtype == torch.float32 and b.shape == (8,)
    assert torch.isfinite(b).all()
    # bf16 keeps 8 significant bits: probabilities agree to a few hundredths, not exactly.
    diff = (torch.sigmoid(a) - torch.sigmoid(b)).abs().max().item()
    assert 0 < diff < 0.05, diff
