"""MobileViT-XXS (Mehta & Rastegari 2022), adapted to 32x32 inputs.

Changes from the ImageNet model, for small images: the stem and the second stage keep stride 1
(as the CIFAR MobileNetV2 does), so on 32x32 the three MobileViT blocks see 16x16, 8x8 and 4x4
maps. Patches are 2x2; a map whose side is not a multiple of 2 is resized up for the transformer
and back, as the reference implementation does, so 8x8 and 64x64 inputs also work.

The attention is written out with an `nn.Linear` qkv projection, `reshape`, `matmul` and
`softmax` so that Torch-Pruning can trace it. The qkv projection is listed in
`unprunable_modules()`: its output is split into heads by a reshape that the dependency graph
cannot map, so attention widths stay dense. Everything else prunes: conv channels, the token
dimension (LayerNorms, qkv inputs, output projections, MLPs, residuals) and the MLP hidden size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import ImageClassifier, ImageSpec, make_divisible
from .mobilenet import InvertedResidual
from .registry import register_model

__all__ = [
    "Attention",
    "MobileViT",
    "MobileViTBlock",
    "TransformerLayer",
    "mobilevit_xxs",
]


def _conv_bn_silu(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.SiLU(),
    )


class Attention(nn.Module):
    """Multi-head self-attention over (B, N, D) tokens with a fused qkv projection."""

    def __init__(self, dim: int, num_heads: int, head_dim: int):
        super().__init__()
        self.num_heads = num_heads
        self.scale = head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * num_heads * head_dim)
        self.proj = nn.Linear(num_heads * head_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * self.scale, dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(b, n, -1)
        return self.proj(out)


class TransformerLayer(nn.Module):
    """Pre-norm transformer layer: x + MHSA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, mlp_dim: int, num_heads: int, head_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, head_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, mlp_dim)
        self.act = nn.SiLU()
        self.fc2 = nn.Linear(mlp_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


class MobileViTBlock(nn.Module):
    """Local conv representation, transformer over unfolded patches, fold, fuse with input."""

    def __init__(
        self,
        channels: int,
        dim: int,
        depth: int,
        mlp_dim: int,
        num_heads: int = 4,
        patch_size: int = 2,
    ):
        super().__init__()
        self.patch_size = patch_size
        self.local = _conv_bn_silu(channels, channels, 3)
        self.to_tokens = nn.Conv2d(channels, dim, 1, bias=False)
        self.transformer = nn.Sequential(
            *(TransformerLayer(dim, mlp_dim, num_heads, dim // num_heads) for _ in range(depth))
        )
        self.norm = nn.LayerNorm(dim)
        self.from_tokens = _conv_bn_silu(dim, channels, 1)
        self.fusion = _conv_bn_silu(2 * channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.to_tokens(self.local(x))
        b, d, h, w = y.shape
        p = self.patch_size
        ph, pw = -(-h // p) * p, -(-w // p) * p
        if (ph, pw) != (h, w):
            y = F.interpolate(y, size=(ph, pw), mode="bilinear", align_corners=False)
        nh, nw = ph // p, pw // p
        # (B, D, nh*p, nw*p) -> (B*p*p, nh*nw, D): pixel (i, j) of every patch forms a sequence.
        tokens = y.reshape(b, d, nh, p, nw, p).permute(0, 3, 5, 2, 4, 1).reshape(-1, nh * nw, d)
        tokens = self.norm(self.transformer(tokens))
        y = tokens.reshape(b, p, p, nh, nw, -1).permute(0, 5, 3, 1, 4, 2).reshape(b, -1, ph, pw)
        if (ph, pw) != (h, w):
            y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)
        return self.fusion(torch.cat((x, self.from_tokens(y)), dim=1))


class MobileViT(ImageClassifier):
    """MobileViT-XXS layout: MV2 stages, then MV2 + MobileViT blocks at three resolutions."""

    def __init__(self, spec: ImageSpec, *, width: float = 1.0, num_heads: int = 4):
        super().__init__(spec)

        def ch(c: int) -> int:
            return make_divisible(c * width, 8)

        def dim(d: int) -> int:
            return make_divisible(d * width, 4 * num_heads)

        expansion = 2
        self.stem = _conv_bn_silu(spec.input_shape[0], ch(16), 3, stride=1)
        self.stage1 = InvertedResidual(ch(16), ch(16), 1, expansion)
        self.stage2 = nn.Sequential(
            InvertedResidual(ch(16), ch(24), 1, expansion),
            InvertedResidual(ch(24), ch(24), 1, expansion),
            InvertedResidual(ch(24), ch(24), 1, expansion),
        )
        self.stage3 = nn.Sequential(
            InvertedResidual(ch(24), ch(48), 2, expansion),
            MobileViTBlock(ch(48), dim(64), 2, 2 * dim(64), num_heads),
        )
        self.stage4 = nn.Sequential(
            InvertedResidual(ch(48), ch(64), 2, expansion),
            MobileViTBlock(ch(64), dim(80), 4, 2 * dim(80), num_heads),
        )
        self.stage5 = nn.Sequential(
            InvertedResidual(ch(64), ch(80), 2, expansion),
            MobileViTBlock(ch(80), dim(96), 3, 2 * dim(96), num_heads),
        )
        last = 4 * ch(80)
        self.head = _conv_bn_silu(ch(80), last, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(last, spec.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage2(self.stage1(self.stem(x)))
        x = self.stage5(self.stage4(self.stage3(x)))
        return torch.flatten(self.pool(self.head(x)), 1)

    def unprunable_modules(self) -> list[nn.Module]:
        return [m.qkv for m in self.modules() if isinstance(m, Attention)]


@register_model()
def mobilevit_xxs(spec: ImageSpec, width: float | None) -> MobileViT:
    """MobileViT-XXS for 32x32 inputs (about 1M parameters at width 1)."""
    return MobileViT(spec, width=width or 1.0)
