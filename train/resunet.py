"""A residual UNet in the style of Ho et al. (2020) / improved-diffusion, optionally class-conditional.

Why it exists (docs/ARCHITECTURE.md, "the reference UNet cannot see the scale of its input"): the
article's UNet normalises x_t with LayerNorm before any convolution, so its samples drift. Here
every block is residual (x + f(x)), so the scale of x_t reaches the output through the identity path.

Layout for S x S images with C_img channels (S = 28: 28, 14, 7), base width C, multipliers (1, 2, 2):

    conv_in C_img->C | S: Res | down | S/2: Res | down | S/4: Res+Attn | mid: Res, Attn, Res
                 | S/4: Res+Attn (skip) | up | S/2: Res (skip) | up | S: Res (skip) | out C->C_img

Each Res block: GroupNorm, SiLU, conv3x3, + embedding (timestep, plus class), GroupNorm, SiLU,
dropout, conv3x3 (zero-initialised, so each block starts as the identity), + skip path.
Classifier-free guidance (Ho & Salimans 2022): label ``num_classes`` is the null label, used for
a share of training examples, and at sampling for the unconditional half of the batch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ddpm_deploy.errors import UserError

ARCH_NAME = "resunet"


@dataclass(frozen=True)
class ResUNetConfig:
    name: str = ARCH_NAME
    base: int = 32
    mults: tuple[int, ...] = (1, 2, 2)  # one level per resolution: S, S/2, S/4
    blocks: int = 1  # residual blocks per level on the way down; one per level on the way up
    attention: bool = True  # self-attention at the lowest resolution (7 x 7) and in the middle
    groups: int = 8
    dropout: float = 0.0
    num_classes: int = 0  # 0: unconditional; K: labels 0..K-1 plus the null label K
    embedding: str = "sinusoidal-standard"
    channels: int = 1  # image channels: 1 grey, 3 colour
    image_size: int = 28  # S of the S x S images; a multiple of 4 (two halvings)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mults"] = list(self.mults)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ResUNetConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(
                f"resunet settings {unknown} are unknown to this version; upgrade ddpm-deploy"
            )
        cfg = cls(**{**d, "mults": tuple(d.get("mults", cls.mults))})
        cfg.check()
        return cfg

    def check(self) -> None:
        if len(self.mults) != 3:
            raise UserError(f"resunet needs 3 levels (S, S/2, S/4 pixels), got mults {self.mults}")
        if self.channels not in (1, 3):
            raise UserError(f"resunet images have 1 or 3 channels, got {self.channels}")
        if self.image_size < 8 or self.image_size % 4:
            raise UserError(
                f"resunet halves the image twice: --image-size must be a multiple of 4 and at "
                f"least 8, got {self.image_size}"
            )
        widths = [self.base * m for m in self.mults]
        if self.base <= 0 or any(w % self.groups for w in widths):
            raise UserError(
                f"resunet widths {widths} must be positive multiples of groups={self.groups}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.num_classes < 0:
            raise UserError(f"num_classes must be >= 0, got {self.num_classes}")

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0


def sinusoid(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Standard transformer sinusoid [sin(t w_i), cos(t w_i)], w_i = 10000^(-2i/d), from t in-graph."""
    freqs = torch.exp(
        -math.log(10000.0) * torch.arange(dim // 2, dtype=torch.float32, device=t.device) * 2 / dim
    )
    angles = t.to(torch.float32)[:, None] * freqs[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.drop = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]  # broadcast, never reshape(n, ...)
        h = self.conv2(self.drop(self.act(self.norm2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    """Single-head self-attention over the H*W positions, residual, output projection zero-init.

    Written with plain matmuls and a softmax (no fused SDPA) so that the ONNX graph is the same
    small set of ops on every exporter and the fp16 converter can keep the softmax in fp32.
    """

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv2d(channels, channels, 1))
        self.scale = channels**-0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        q, k, v = self.qkv(self.norm(x)).flatten(2).split(c, dim=1)  # each N x C x HW
        weights = torch.softmax((q.transpose(1, 2) @ k) * self.scale, dim=-1)  # N x HW x HW
        h = (v @ weights.transpose(1, 2)).view_as(x)
        return x + self.proj(h)


class ResUNet(nn.Module):
    """eps_theta(x_t, t[, y]): N x C x S x S float32, N int64[, N int64] -> N x C x S x S."""

    def __init__(self, config: ResUNetConfig | None = None):
        super().__init__()
        cfg = self.config = config or ResUNetConfig()
        cfg.check()
        c1, c2, c3 = (cfg.base * m for m in cfg.mults)
        emb = 4 * cfg.base
        self.emb_dim = emb
        self.time_mlp = nn.Sequential(nn.Linear(cfg.base, emb), nn.SiLU(), nn.Linear(emb, emb))
        if cfg.conditional:
            # A one-hot matmul rather than nn.Embedding: no Gather on an int64 input in the graph
            # (an older TensorRT mishandled one on the timestep; docs/ARCHITECTURE.md).
            self.label_emb = nn.Linear(cfg.num_classes + 1, emb, bias=False)

        def res(a: int, b: int) -> ResBlock:
            return ResBlock(a, b, emb, cfg.groups, cfg.dropout)

        def attn(c: int) -> nn.Module:
            return Attention(c, cfg.groups) if cfg.attention else nn.Identity()

        self.conv_in = nn.Conv2d(cfg.channels, c1, 3, padding=1)
        self.down1 = nn.ModuleList([res(c1, c1) for _ in range(cfg.blocks)])
        self.pool1 = nn.Conv2d(c1, c1, 3, stride=2, padding=1)  # S -> S/2
        self.down2 = nn.ModuleList([res(c1 if i == 0 else c2, c2) for i in range(cfg.blocks)])
        self.pool2 = nn.Conv2d(c2, c2, 3, stride=2, padding=1)  # S/2 -> S/4
        self.down3 = nn.ModuleList([res(c2 if i == 0 else c3, c3) for i in range(cfg.blocks)])
        self.attn3 = attn(c3)
        self.mid1, self.mid_attn, self.mid2 = res(c3, c3), attn(c3), res(c3, c3)
        self.up3 = res(c3 + c3, c3)
        self.up3_attn = attn(c3)
        self.up2 = res(c3 + c2, c2)  # after nearest S/4 -> S/2
        self.up1 = res(c2 + c1, c1)  # after nearest S/2 -> S
        self.out = nn.Sequential(
            nn.GroupNorm(cfg.groups, c1),
            nn.SiLU(),
            _zero(nn.Conv2d(c1, cfg.channels, 3, padding=1)),
        )

    def embed(self, t: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        e = self.time_mlp(sinusoid(t, self.config.base))
        if self.config.conditional:
            if y is None:
                raise ValueError("a class-conditional ResUNet needs labels y (null label: K)")
            classes = torch.arange(self.config.num_classes + 1, device=y.device)
            e = e + self.label_emb((y[:, None] == classes[None, :]).to(e.dtype))
        return e

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None):
        e = self.embed(t, y)
        h = self.conv_in(x)
        for block in self.down1:
            h = block(h, e)
        s1 = h
        h = self.pool1(h)
        for block in self.down2:
            h = block(h, e)
        s2 = h
        h = self.pool2(h)
        for block in self.down3:
            h = block(h, e)
        h = s3 = self.attn3(h)
        h = self.mid2(self.mid_attn(self.mid1(h, e)), e)
        h = self.up3_attn(self.up3(torch.cat([h, s3], dim=1), e))
        h = nn.functional.interpolate(h, scale_factor=2.0, mode="nearest")
        h = self.up2(torch.cat([h, s2], dim=1), e)
        h = nn.functional.interpolate(h, scale_factor=2.0, mode="nearest")
        h = self.up1(torch.cat([h, s1], dim=1), e)
        return self.out(h)
