"""The one random generator of every target: Philox4x32-10 (Salmon et al. 2011, "Parallel random
numbers: as easy as 1, 2, 3") and Box-Muller, keyed by (seed, image index, draw).

A counter-based generator is a pure function of (counter, key), built from 32-bit multiplies, adds
and xors, so numpy (here), an ONNX graph (export/onnx_philox.py), JavaScript and any other language
compute the same words bit for bit; the normals then differ only by the last bit of float32 log,
sqrt, cos and sin. docs/NOISE.md publishes the layout and test vectors for other implementations.

Layout: key = (seed mod 2^32, seed div 2^32); counter = (block, draw, index mod 2^32, index div
2^32). Draw 0 is an image's x_T, draw k its k-th later draw (a stochastic sampler's step noise),
CLASS_DRAW its random class. Block b gives values 4b .. 4b+3 of a draw, in C, H, W order.
"""

from __future__ import annotations

import numpy as np

ROUNDS = 10
MULTIPLIERS = (0xD2511F53, 0xCD9E8D57)
WEYL = (0x9E3779B9, 0xBB67AE85)  # the key schedule's increments (golden ratio, sqrt(3) - 1)
MASK32 = np.uint64(0xFFFFFFFF)
CLASS_DRAW = 0xFFFFFFFF  # the draw that picks an image's random class
SHIFT = np.uint64(32)
TWO_PI = np.float32(2 * np.pi)


def philox4x32(counter: np.ndarray, key: np.ndarray, rounds: int = ROUNDS) -> np.ndarray:
    """Philox4x32-R: ``counter`` [..., 4] and ``key`` [..., 2] (integers below 2^32, broadcast
    against each other) to four 32-bit words [..., 4], as uint64. One round (Random123's
    philox4x32round): hi0:lo0 = M0 c0, hi1:lo1 = M1 c2, c = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0);
    the key grows by WEYL between rounds."""
    c = [np.asarray(counter, np.uint64)[..., j] & MASK32 for j in range(4)]
    k = [np.asarray(key, np.uint64)[..., j] & MASK32 for j in range(2)]
    for r in range(rounds):
        if r:
            k = [(k[0] + np.uint64(WEYL[0])) & MASK32, (k[1] + np.uint64(WEYL[1])) & MASK32]
        p0 = np.uint64(MULTIPLIERS[0]) * c[0]  # < 2^64: exact in uint64
        p1 = np.uint64(MULTIPLIERS[1]) * c[2]
        c = [(p1 >> SHIFT) ^ c[1] ^ k[0], p1 & MASK32, (p0 >> SHIFT) ^ c[3] ^ k[1], p0 & MASK32]
    return np.stack(np.broadcast_arrays(*c), axis=-1)


def _keys_and_counters(seeds, indices, draw: int, blocks: int) -> tuple[np.ndarray, np.ndarray]:
    seeds = np.asarray(seeds, np.uint64).reshape(-1, 1)
    indices = np.asarray(indices, np.uint64).reshape(-1, 1)
    b = np.arange(blocks, dtype=np.uint64).reshape(1, -1)
    counter = np.stack(
        np.broadcast_arrays(b, np.uint64(draw), indices & MASK32, indices >> SHIFT), axis=-1
    )
    key = np.stack([seeds & MASK32, seeds >> SHIFT], axis=-1)  # [N, 1, 2]
    return counter, key


def uniforms(words: np.ndarray) -> np.ndarray:
    """32-bit words to float32 in (0, 1): the top 23 bits and a half, (2k + 1) / 2^24, exact."""
    return ((words >> np.uint64(9)).astype(np.float32) + np.float32(0.5)) * np.float32(2.0**-23)


def box_muller(words: np.ndarray) -> np.ndarray:
    """[..., 4] words to four normals: (u0, u1) and (u2, u3) each give r cos(2 pi u'), r sin(2 pi u')
    with r = sqrt(-2 log u), in float32 in the order every implementation follows."""
    u = uniforms(words)
    r = np.sqrt(np.float32(-2.0) * np.log(u[..., 0::2]))
    theta = u[..., 1::2] * TWO_PI
    return np.stack([r * np.cos(theta), r * np.sin(theta)], axis=-1).reshape(words.shape)


def normals(seeds, indices, draw: int, count: int) -> np.ndarray:
    """float32 [N, count]: row k is draw ``draw`` of image ``indices[k]`` under ``seeds[k]`` (a
    scalar seed serves every row)."""
    indices = np.asarray(indices).reshape(-1)
    seeds = np.broadcast_to(np.asarray(seeds), indices.shape)
    if len(indices) and min(seeds.min(), indices.min()) < 0:
        raise ValueError("seeds and image indices must be >= 0")
    blocks = -(-count // 4)
    counter, key = _keys_and_counters(seeds, indices, draw, blocks)
    return box_muller(philox4x32(counter, key)).reshape(len(indices), blocks * 4)[:, :count]


def classes(seeds, indices, k: int) -> np.ndarray:
    """int64 [N]: each image's class uniform over 0..k-1 (k < 256): floor((w >> 9) k / 2^23) of the
    first word w of its CLASS_DRAW (bias below k / 2^23), a product int32 holds."""
    if not 1 <= k < 256:
        raise ValueError(f"random classes among 1..255 classes, got {k}")
    indices = np.asarray(indices).reshape(-1)
    seeds = np.broadcast_to(np.asarray(seeds), indices.shape)
    counter, key = _keys_and_counters(seeds, indices, CLASS_DRAW, 1)
    word = philox4x32(counter, key)[:, 0, 0]
    return (((word >> np.uint64(9)) * np.uint64(k)) >> np.uint64(23)).astype(np.int64)
