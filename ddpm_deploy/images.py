"""Image grids, PNGs and GIFs from numpy arrays (imageio; no torch)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from ddpm_deploy.files import atomic_path


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Map model space [-1, 1] to 0..255 by clipping, never by per-image min-max (docs/ARCHITECTURE.md)."""
    return np.round((np.clip(x, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


def pixel_layout(images: np.ndarray) -> np.ndarray:
    """N x C x H x W (the model's layout) as picture files hold pixels: N x H x W when grey (C = 1),
    N x H x W x C in colour."""
    images = np.asarray(images)
    return images[:, 0] if images.shape[1] == 1 else images.transpose(0, 2, 3, 1)


def grid(images: np.ndarray, ncols: int | None = None, pad: int = 2, scale: int = 1) -> np.ndarray:
    """Tile N x C x H x W images (model space) into one uint8 picture, each pixel `scale` x `scale`:
    H' x W' when grey, H' x W' x C in colour."""
    return grid_uint8(to_uint8(np.asarray(images)), ncols, pad, scale)


def grid_uint8(
    images: np.ndarray, ncols: int | None = None, pad: int = 2, scale: int = 1
) -> np.ndarray:
    """``grid`` for images already mapped to 0..255 (N x C x H x W uint8)."""
    images = pixel_layout(images)
    n, h, w = images.shape[:3]
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    size = (nrows * (h + pad) + pad, ncols * (w + pad) + pad, *images.shape[3:])
    out = np.full(size, 255, dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        out[y : y + h, x : x + w] = img
    return out.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else out


def _write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Encoded in memory, then written in one go: a failing write (a full disk) is one OSError,
    not an imageio writer that retries, and fails again, when it is collected."""
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)


def save_png(path: str | os.PathLike, picture: np.ndarray) -> None:
    _write_bytes(path, iio.imwrite("<bytes>", picture, extension=".png"))


def save_gif(
    path: str | os.PathLike, frames: list[np.ndarray], hold: int | None = None, fps: float = 20.0
) -> None:
    """Write frames as a looping GIF, holding the last one for ``hold`` frame times (default a third
    of the count, as the seed does). The hold is the last frame's duration: GIF writers merge
    repeated identical frames anyway."""
    hold = len(frames) // 3 if hold is None else hold
    frame_ms = 1000.0 / fps
    durations = [frame_ms] * (len(frames) - 1) + [frame_ms * (1 + hold)]
    if len(frames) == 1:
        # Pillow takes a one-frame GIF's duration as a number; a one-element list raises
        frames, durations = [frames[0], frames[0]], [frame_ms, frame_ms]
    gif = iio.imwrite("<bytes>", np.stack(frames), extension=".gif", duration=durations, loop=0)
    _write_bytes(path, gif)


def frame_steps(total_steps: int, n_frames: int = 100) -> set[int]:
    """Which step indices (0-based, in sampling order) to capture: spread over the run, last included."""
    idx = np.linspace(0, total_steps - 1, min(n_frames, total_steps)).round().astype(int)
    return set(idx.tolist())
