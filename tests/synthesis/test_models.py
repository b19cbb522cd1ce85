"""Every architecture builds and maps (N, 3, H, W) to (N,) logits."""

from __future__ import annotations

import pytest
import torch

from services.synthesis.models import ARCHS, BayarConv2d, build_model, srm_kernels

torch.set_num_threads(1)


@pytest.mark.parametrize(
    ("arch", "kwargs", "size"),
    [
        ("tiny", {}, 32),
        ("forensic", {}, 64),
        ("paper_cnn", {}, 64),
        ("resnet50", {}, 64),  # one cheap forward at 64 px: shape only
        ("vit", {"variant": "ti_16", "image_size": 32}, 32),
    ],
)
def test_forward_shape(arch, kwargs, size):
    model = build_model(arch, **kwargs).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2,)
    assert torch.isfinite(out).all()


def test_vit_b_16_constructs_with_one_logit():
    model = build_model("vit")  # vit_b_16 at 224: construct only (a forward costs seconds)
    assert model.heads.head.out_features == 1
    assert sum(p.numel() for p in model.parameters()) > 80_000_000


def test_resnet50_has_one_logit_head():
    model = build_model("resnet50")
    assert model.fc[0].out_features == 1


def test_all_archs_listed_and_unknown_refused():
    assert set(ARCHS) >= {"resnet50", "paper_cnn", "vit", "forensic", "tiny"}
    with pytest.raises(ValueError, match="unknown arch"):
        build_model("nope")


def test_bayar_constraint_holds_after_any_weights():
    conv = BayarConv2d(3, 4, 5)
    with torch.no_grad():
        conv.weight.uniform_(-3, 3)
    w = conv.constrained_weight()
    assert torch.allclose(w[:, :, 2, 2], torch.full((4, 3), -1.0))
    off = w.sum(dim=(2, 3)) + 1.0  # sum of off-centre weights
    assert torch.allclose(off, torch.ones_like(off), atol=1e-4)


def test_srm_kernels_cancel_flat_content():
    k = srm_kernels()
    assert torch.allclose(k.sum(dim=(1, 2)), torch.zeros(3), atol=1e-6)


def test_forensic_ignores_constant_offset_in_residuals():
    # High-pass front end: the residual maps of a flat image are zero wherever the filters
    # see only flat pixels, whatever the brightness.
    model = build_model("forensic").eval()
    flat = torch.full((1, 3, 32, 32), 120.0)
    srm = torch.nn.functional.conv2d(flat, model.srm_weight, padding=0)
    assert torch.allclose(srm, torch.zeros_like(srm), atol=1e-4)
