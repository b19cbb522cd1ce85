"""The synthesis models: one module shared by training (training/) and serving (engine.py).

Every architecture maps a batch of normalised RGB-like tensors (N, 3, H, W) to one logit
per input, shape (N,): the probability that the input is composited or manipulated is
sigmoid(logit) after the checkpoint's calibration. Architectures are built only through
`build_model(arch, **kwargs)`, and a checkpoint stores `arch` and `kwargs`, so a served
model is always the exact module that was trained.

Archs:
- "resnet50": the paper's model, torchvision ResNet-50 with a one-logit head. No
  pretrained weights exist here (nothing can be downloaded), so it is trained from scratch.
- "paper_cnn": the paper's custom CNN (conv + batch-norm + ReLU + pooling blocks, a fully
  connected layer with dropout, one logit), reconstructed from its description.
- "vit": a torchvision VisionTransformer ("b_16" = vit_b_16, or the smaller "s_16"/"ti_16").
- "forensic": ours. Reads low-level traces instead of semantics: a fixed SRM high-pass
  bank plus a Bayar-constrained learnable prediction-error filter on native-resolution
  tiles, a truncation (TLU) as in SRM steganalysis, then a small strided CNN. Fast on CPU.
- "tiny": a very small CNN for tests and benchmarks of the plumbing.
- "consistency": ours, the served default. An MLP embedder of camera-trace features of
  native-resolution patches (services/synthesis/traces.py); patches of one pipeline embed
  close together, so an image whose patches split into groups is a composite
  (services/synthesis/consistency.py). Input (N, F) features, output (N, E) unit vectors.
- "splicebuster": no weights at all: passes Splicebuster's co-occurrence features through
  unchanged, for the zero-training baseline served by the same path.

Patch archs take feature vectors, not pixels: EMBEDDING_ARCHS names them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

# ImageNet ViT patch size, pixels.
VIT_PATCH = 16
# ViT sizes (layers, heads, hidden, mlp): b_16 as torchvision's vit_b_16, s_16 and ti_16
# as in DeiT (Touvron et al. 2021), which train from scratch on small data more readily.
_VIT_VARIANTS: dict[str, tuple[int, int, int, int]] = {
    "b_16": (12, 12, 768, 3072),
    "s_16": (12, 6, 384, 1536),
    "ti_16": (12, 3, 192, 768),
}


def _resnet50(num_channels: int = 3) -> nn.Module:
    from torchvision.models import resnet50

    model = resnet50(weights=None)
    if num_channels != 3:
        model.conv1 = nn.Conv2d(num_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    # One logit, flattened to (N,): the paper's "last layer adjusted, number of classes 1".
    model.fc = nn.Sequential(nn.Linear(model.fc.in_features, 1), nn.Flatten(0))
    return model


class PaperCNN(nn.Module):
    """The paper's custom CNN: conv-BN-ReLU-maxpool blocks, FC with dropout, one logit.

    The paper gives the layer types but not the sizes (its Fig. 5 summary is an image);
    these are a conventional reconstruction. Adaptive pooling before the classifier lets
    it take any input size, though the paper used 224x224.
    """

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 128), hidden: int = 256, dropout: float = 0.5):
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for width in widths:
            layers += [
                nn.Conv2d(in_ch, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            in_ch = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d((7, 7))  # 7x7: what 224 px reaches after 5 halvings
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_ch * 49, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x))).flatten(0)


def _vit(variant: str = "b_16", image_size: int = 224) -> nn.Module:
    from torchvision.models.vision_transformer import VisionTransformer

    if variant not in _VIT_VARIANTS:
        raise ValueError(f"unknown ViT variant {variant!r}; choose from {sorted(_VIT_VARIANTS)}")
    if image_size % VIT_PATCH:
        raise ValueError(f"ViT image_size must be a multiple of {VIT_PATCH}, got {image_size}")
    layers, heads, hidden, mlp = _VIT_VARIANTS[variant]
    model = VisionTransformer(
        image_size=image_size,
        patch_size=VIT_PATCH,
        num_layers=layers,
        num_heads=heads,
        hidden_dim=hidden,
        mlp_dim=mlp,
        num_classes=1,
    )
    model.heads.add_module("flatten", nn.Flatten(0))
    return model


class TinyCNN(nn.Module):
    """Two strided convs and a linear head: for tests, not for detection."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(2 * width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x)).flatten(0)


def srm_kernels() -> torch.Tensor:
    """Three classic SRM residual filters (Fridrich & Kodovsky 2012), 5x5, shape (3, 5, 5).

    First-order edge, second-order and the 'KV' square 5x5: each predicts a pixel from its
    neighbours, so image content cancels and the noise/resampling traces that compositing
    disturbs remain.
    """
    first = torch.zeros(5, 5)
    first[2, 1:4] = torch.tensor([0.0, -1.0, 1.0])
    second = torch.zeros(5, 5)
    second[2, 1:4] = torch.tensor([1.0, -2.0, 1.0])
    second /= 2.0
    kv = (
        torch.tensor(
            [
                [-1.0, 2.0, -2.0, 2.0, -1.0],
                [2.0, -6.0, 8.0, -6.0, 2.0],
                [-2.0, 8.0, -12.0, 8.0, -2.0],
                [2.0, -6.0, 8.0, -6.0, 2.0],
                [-1.0, 2.0, -2.0, 2.0, -1.0],
            ]
        )
        / 12.0
    )
    return torch.stack([first, second, kv])


class BayarConv2d(nn.Conv2d):
    """A constrained convolution (Bayar & Stamm 2018): the centre weight is -1 and the
    others sum to 1, so the layer learns prediction-error filters rather than content.

    The constraint is applied in forward() (not by projecting after each optimiser step),
    so training and serving see the same effective weights whatever the training loop does.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)

    def constrained_weight(self) -> torch.Tensor:
        k = self.kernel_size[0]
        mask = torch.ones(k, k, device=self.weight.device, dtype=self.weight.dtype)
        mask[k // 2, k // 2] = 0
        off = self.weight * mask
        total = off.sum(dim=(2, 3), keepdim=True)
        # 1e-6: keeps the division finite if the off-centre weights ever sum to zero.
        total = torch.where(total.abs() < 1e-6, torch.full_like(total, 1e-6), total)
        off = off / total
        return off - (1 - mask)  # centre = -1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.constrained_weight(), None, self.stride, self.padding)


def _conv_bn(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class ForensicNet(nn.Module):
    """Ours: a residual (high-pass) front end on native-resolution pixels, then a small CNN.

    Front end: the fixed SRM bank per colour channel (9 maps: colour mismatch between the
    pasted object and the background shows in per-channel residuals) and `bayar` learnable
    constrained filters across channels; a truncation at +-`tlu` keeps strong edges from
    dominating the residuals. Then four stride-2 stages and global average + max pooling
    (max so that a small pasted region still moves the logit).

    Inputs are expected in grey levels (0..255; checkpoint.default_specs("forensic")), so
    `tlu` is in grey levels. The front end always runs in float32, also under autocast:
    residuals of one grey level on values near 255 are below bfloat16's resolution.
    """

    def __init__(self, width: int = 16, bayar: int = 6, tlu: float = 8.0, dropout: float = 0.2):
        super().__init__()
        srm = srm_kernels()
        weight = torch.zeros(9, 3, 5, 5)
        for k in range(3):
            for c in range(3):
                weight[3 * k + c, c] = srm[k]
        self.register_buffer("srm_weight", weight)
        self.bayar = BayarConv2d(3, bayar, 5)
        self.tlu = tlu
        front = 9 + bayar
        self.stem_bn = nn.BatchNorm2d(front)
        self.stages = nn.Sequential(
            _conv_bn(front, width, 2),
            _conv_bn(width, 2 * width, 2),
            _conv_bn(2 * width, 4 * width, 2),
            _conv_bn(4 * width, 4 * width, 1),
            _conv_bn(4 * width, 8 * width, 2),
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(16 * width, 1)

    def residuals(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.float()
            srm = F.conv2d(x, self.srm_weight, padding=2)
            res = torch.cat([srm, self.bayar(x)], dim=1)
            return self.stem_bn(torch.clamp(res, -self.tlu, self.tlu))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stages(self.residuals(x))
        pooled = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
        return self.head(self.dropout(pooled)).flatten(0)


class ConsistencyEmbedder(nn.Module):
    """Trace features of one patch (with its image context) -> a unit embedding.

    Features are standardised by buffers fitted on the training set (stored in the
    checkpoint), so serving needs nothing but the state dict. `pair_scale` and `pair_bias`
    map a squared embedding distance d in [0, 4] to P(different pipelines) =
    sigmoid(pair_scale * d + pair_bias); they are trained with the embedder.
    """

    def __init__(self, in_features: int, hidden: int = 256, depth: int = 3, embed_dim: int = 32, dropout: float = 0.1):
        super().__init__()
        self.register_buffer("feature_mean", torch.zeros(in_features))
        self.register_buffer("feature_std", torch.ones(in_features))
        layers: list[nn.Module] = []
        width = in_features
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Dropout(dropout)]
            width = hidden
        layers.append(nn.Linear(width, embed_dim))
        self.mlp = nn.Sequential(*layers)
        # Start with P(different) = 0.5 at d = 1 (orthogonal-ish embeddings).
        self.pair_scale = nn.Parameter(torch.tensor(4.0))
        self.pair_bias = nn.Parameter(torch.tensor(-4.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            # Standardising runs in float32: log-features differ in the third digit.
            z = (x.float() - self.feature_mean) / self.feature_std
        z = torch.clamp(z, -8.0, 8.0)  # std units: one wild feature cannot dominate
        return F.normalize(self.mlp(z).float(), dim=1)


class Passthrough(nn.Module):
    """Identity on (N, F) features: the Splicebuster baseline has no learned part."""

    def __init__(self, in_features: int = 81):
        super().__init__()
        self.in_features = in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()


_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "resnet50": _resnet50,
    "paper_cnn": PaperCNN,
    "vit": _vit,
    "forensic": ForensicNet,
    "tiny": TinyCNN,
    "consistency": ConsistencyEmbedder,
    "splicebuster": Passthrough,
}
ARCHS: tuple[str, ...] = tuple(_BUILDERS)
# Archs whose inputs are per-patch feature vectors (N, F), scored by consistency.py.
EMBEDDING_ARCHS: tuple[str, ...] = ("consistency", "splicebuster")


def build_model(arch: str, **kwargs) -> nn.Module:
    """A freshly initialised model of `arch` with `kwargs`; outputs logits of shape (N,)."""
    try:
        builder = _BUILDERS[arch]
    except KeyError:
        raise ValueError(f"unknown arch {arch!r}; choose from {', '.join(ARCHS)}") from None
    if "widths" in kwargs and isinstance(kwargs["widths"], list):
        kwargs = {**kwargs, "widths": tuple(kwargs["widths"])}  # checkpoints store lists
    return builder(**kwargs)
