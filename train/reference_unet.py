"""The seed article's reference UNet ("the vanilla UNet" of the DDPM tutorial it grew from), rebuilt faithfully with two fixes
(docs/ARCHITECTURE.md, "Known traps"):

* the standard sinusoidal timestep embedding (w_i = 1/10000^(2i/d), i < d/2), computed from t inside
  the graph rather than looked up in a table (no gather on an int64 timestep in exported graphs);
* no batch size is read from the input (``reshape(n, -1, 1, 1)`` traces as a constant batch in ONNX).

The article also creates a LayerNorm in the last b_out block and never uses it; it is not built here,
so the trainable parameter count is 491,172.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ddpm_deploy.errors import UserError

ARCH_NAME = "reference-unet"
EMBEDDINGS = ("sinusoidal-standard",)


@dataclass(frozen=True)
class UNetConfig:
    name: str = ARCH_NAME
    time_dim: int = 100
    embedding: str = "sinusoidal-standard"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> UNetConfig:
        if d.get("name") != ARCH_NAME:
            raise UserError(
                f"architecture {d.get('name')!r} is not supported; this version builds {ARCH_NAME!r}"
            )
        if d.get("embedding") not in EMBEDDINGS:
            raise UserError(
                f"unknown timestep embedding {d.get('embedding')!r}; choose from {EMBEDDINGS}"
            )
        return cls(**d)


class SinusoidalEmbedding(nn.Module):
    """Standard transformer sinusoid of an integer timestep: [sin(t w_i), cos(t w_i)], w_i = 10000^(-2i/d)."""

    def __init__(self, dim: int):
        super().__init__()
        if dim % 2:
            raise ValueError(f"embedding dimension must be even, got {dim}")
        freqs = torch.exp(
            -math.log(10000.0) * torch.arange(dim // 2, dtype=torch.float32) * 2 / dim
        )
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = t.to(torch.float32)[:, None] * self.freqs[None, :]
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class Block(nn.Module):
    """LayerNorm over (C, H, W) -> conv3x3 -> SiLU -> conv3x3 -> SiLU, as in the article."""

    def __init__(self, shape: tuple[int, int, int], c_in: int, c_out: int, normalize: bool = True):
        super().__init__()
        self.norm = nn.LayerNorm(shape) if normalize else nn.Identity()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.act(self.conv1(self.norm(x)))))


def _time_mlp(dim_in: int, dim_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim_in, dim_out), nn.SiLU(), nn.Linear(dim_out, dim_out))


def _stage(size: int, channels: list[int], last_norm: bool = True) -> nn.Sequential:
    blocks = []
    for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:], strict=True)):
        normalize = last_norm or i < len(channels) - 2
        blocks.append(Block((c_in, size, size), c_in, c_out, normalize=normalize))
    return nn.Sequential(*blocks)


class ReferenceUNet(nn.Module):
    """eps_theta(x_t, t): N x 1 x 28 x 28 float32 and N int64 -> N x 1 x 28 x 28 float32."""

    def __init__(self, config: UNetConfig | None = None):
        super().__init__()
        self.config = config or UNetConfig()
        d = self.config.time_dim
        self.time_embed = SinusoidalEmbedding(d)

        self.te1, self.b1 = _time_mlp(d, 1), _stage(28, [1, 10, 10, 10])
        self.down1 = nn.Conv2d(10, 10, 4, 2, 1)
        self.te2, self.b2 = _time_mlp(d, 10), _stage(14, [10, 20, 20, 20])
        self.down2 = nn.Conv2d(20, 20, 4, 2, 1)
        self.te3, self.b3 = _time_mlp(d, 20), _stage(7, [20, 40, 40, 40])
        self.down3 = nn.Sequential(nn.Conv2d(40, 40, 2, 1), nn.SiLU(), nn.Conv2d(40, 40, 4, 2, 1))

        self.te_mid, self.b_mid = _time_mlp(d, 40), _stage(3, [40, 20, 20, 40])

        self.up1 = nn.Sequential(
            nn.ConvTranspose2d(40, 40, 4, 2, 1), nn.SiLU(), nn.ConvTranspose2d(40, 40, 2, 1)
        )
        self.te4, self.b4 = _time_mlp(d, 80), _stage(7, [80, 40, 20, 20])
        self.up2 = nn.ConvTranspose2d(20, 20, 4, 2, 1)
        self.te5, self.b5 = _time_mlp(d, 40), _stage(14, [40, 20, 10, 10])
        self.up3 = nn.ConvTranspose2d(10, 10, 4, 2, 1)
        self.te_out, self.b_out = _time_mlp(d, 20), _stage(28, [20, 10, 10, 10], last_norm=False)
        self.conv_out = nn.Conv2d(10, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time_embed(t)

        def add_time(h: torch.Tensor, mlp: nn.Module) -> torch.Tensor:
            return h + mlp(emb)[:, :, None, None]  # broadcast, never reshape(n, ...)

        out1 = self.b1(add_time(x, self.te1))
        out2 = self.b2(add_time(self.down1(out1), self.te2))
        out3 = self.b3(add_time(self.down2(out2), self.te3))
        mid = self.b_mid(add_time(self.down3(out3), self.te_mid))

        out4 = self.b4(add_time(torch.cat([out3, self.up1(mid)], dim=1), self.te4))
        out5 = self.b5(add_time(torch.cat([out2, self.up2(out4)], dim=1), self.te5))
        out = self.b_out(add_time(torch.cat([out1, self.up3(out5)], dim=1), self.te_out))
        return self.conv_out(out)
