"""runtime/philox.py's generator as ONNX operators, for the sampler graph's seed input.

Every target must compute the same words, and the targets differ in what integer arithmetic they
have: OpenVINO's CPU plugin runs int64 as int32, WebGPU has no int64 at all, and TensorRT 10 imports
no bitwise operator (BitShift, BitwiseXor: "N" in onnx-tensorrt's docs/operators.md). So each 32-bit
word is held as its four bytes in int32 (little-endian), and no intermediate value reaches 2^19.
Word and byte are the leading axes ([4 words, 4 bytes, N, blocks]): every slice, gather and carry
then moves whole contiguous planes, which ONNX Runtime does several times faster than 4-element
rows.
  - the 32 x 32 -> 64-bit product of a Philox round is a long multiplication: the constant's four
    byte digits times the word's, summed per column (at most 4 * 255^2), then the carries;
  - x ^ y is BitwiseXor on the bytes, or for TensorRT (``xor="arithmetic"``) the bytes' 8 bits,
    Div and Mod by 2^j, summed mod 2 and weighed back: the same bytes either way;
  - the key schedule's additions mod 2^32 carry from byte to byte.
Only seed and index arrive as int64 and become bytes at once (OpenVINO: below 2^31 each).
"""

from __future__ import annotations

import numpy as np
from ddpm_deploy.export.onnx_graph import GraphBuilder
from ddpm_deploy.runtime.philox import CLASS_DRAW, MULTIPLIERS, ROUNDS, WEYL

INT32 = 6  # onnx.TensorProto.INT32


def byte_digits(value: int, count: int = 4) -> list[int]:
    return [(value >> (8 * j)) & 0xFF for j in range(count)]


def product_table() -> np.ndarray:
    """[4, 2, 8, 1, 1]: T[j, m, k] = byte k - j of multiplier m, so sum_j w_j T[j, m, k] is column
    k of the long multiplication MULTIPLIERS[m] * w."""
    table = np.zeros((4, 2, 8, 1, 1), np.int32)
    for m, multiplier in enumerate(MULTIPLIERS):
        digits = byte_digits(multiplier)
        for j in range(4):
            table[j, m, j : j + 4, 0, 0] = digits
    return table


class PhiloxOps:
    """Philox4x32-10 over one graph on byte tensors [..., words, 4]. ``xor``: "bitwise"
    (BitwiseXor: ONNX Runtime, OpenVINO) or "arithmetic" (TensorRT)."""

    def __init__(self, g: GraphBuilder, xor: str = "bitwise"):
        self.g, self.xor = g, xor
        self.c256 = g.const(256, np.int32, "c256")
        self.zero = g.i64([0], "axis0")

    def carry(self, columns: str, count: int, axis: int) -> str:
        """Columns (``count`` along ``axis``) of a sum, each < 2^19, as bytes carried from the
        lowest; the last carry is dropped (mod 256^count). x mod 256 as x - 256 (x div 256)."""
        g = self.g
        parts = g.op("Split", columns, axis=axis, num_outputs=count, outputs=count)
        out, carry = [], None
        for part in parts:
            total = part if carry is None else g.op("Add", part, carry)
            carry = g.op("Div", total, self.c256)
            out.append(g.op("Sub", total, g.op("Mul", carry, self.c256)))
        return g.op("Concat", *out, axis=axis)

    def xor3(self, a: str, b: str, c: str) -> str:
        g = self.g
        if self.xor == "bitwise":
            return g.op("BitwiseXor", g.op("BitwiseXor", a, b), c)
        weights = g.const(
            np.array([1 << j for j in range(8)]).reshape(8, 1, 1, 1, 1), np.int32, "bit_weights"
        )
        two = g.const(2, np.int32, "two")

        def bits(x: str) -> str:
            return g.op("Mod", g.op("Div", g.op("Unsqueeze", x, self.zero), weights), two)

        odd = g.op("Mod", g.op("Add", g.op("Add", bits(a), bits(b)), bits(c)), two)
        return g.op("ReduceSum", g.op("Mul", odd, weights), self.zero, keepdims=0)

    def to_bytes(self, value: str, count: int) -> str:
        """int64 [...] (>= 0) to int32 bytes [count, ...], dividing by 256 again and again: no
        int64 constant beyond 2^31, which OpenVINO's int32 would wrap."""
        g = self.g
        c256, out = g.i64(256, "c256_64"), []
        for _ in range(count):
            out.append(g.op("Unsqueeze", g.op("Mod", value, c256), self.zero))
            value = g.op("Div", value, c256)
        return g.op("Cast", g.op("Concat", *out, axis=0), to=INT32)

    def round_keys(self, key: str) -> str:
        """Key bytes [2, 4, ...] to every round's key [ROUNDS, 2, 4, ...]: key + r WEYL mod 2^32."""
        g = self.g
        steps = np.array(
            [[byte_digits((r * w) & 0xFFFFFFFF) for w in WEYL] for r in range(ROUNDS)], np.int32
        ).reshape(ROUNDS, 2, 4, 1, 1)
        sums = g.op("Add", g.op("Unsqueeze", key, self.zero), g.const(steps, np.int32, "weyl"))
        return self.carry(sums, 4, axis=2)

    def philox(self, counter: str, key: str) -> str:
        """Counter bytes [4, 4, N, B] and key bytes [2, 4, S, 1] to the four words' bytes."""
        g = self.g
        keys = self.round_keys(key)
        tables = [g.const(t, np.int32, "product_table") for t in product_table()]
        evens, odds = g.i64([0, 2], "words_0_2"), g.i64([1, 3], "words_1_3")
        swap, order = g.i64([1, 0], "swap"), g.i64([0, 2, 1, 3], "order")
        c = counter
        for r in range(ROUNDS):
            # 1. hi:lo = M0 c0 and M1 c2, by long multiplication of the bytes: column k is
            #    sum_j byte_j T[j, :, k] (four broadcast products [2, 8, N, B], added)
            w = g.op("Split", g.op("Gather", c, evens, axis=0), axis=1, num_outputs=4, outputs=4)
            products = [g.op("Mul", b, t) for b, t in zip(w, tables, strict=True)]
            columns = products[0]
            for product in products[1:]:
                columns = g.op("Add", columns, product)  # [2, 8, N, B], each < 4 * 255^2
            lo, hi = g.op("Split", self.carry(columns, 8, axis=1), axis=1, num_outputs=2, outputs=2)
            # 2. (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)
            k = g.op("Gather", keys, g.i64(r, "round"), axis=0)
            x = self.xor3(g.op("Gather", hi, swap, axis=0), g.op("Gather", c, odds, axis=0), k)
            mixed = g.op("Concat", x, g.op("Gather", lo, swap, axis=0), axis=0)
            c = g.op("Gather", mixed, order, axis=0)
        return c

    def counter_and_key(
        self, seed: str, index: str, columns: list[tuple[int, int]]
    ) -> tuple[str, str]:
        """runtime/philox.py's layout: counter (block, draw, index lo, index hi) [4, 4, N, C] for the
        (draw, block) of each column, and key (seed lo, seed hi) [2, 4, S, 1], as bytes; ``seed``
        int64 [S], ``index`` int64 [N]."""
        g = self.g
        key = g.op("Reshape", self.to_bytes(seed, 8), g.i64([2, 4, -1, 1], "key_shape"))
        idx = g.op("Reshape", self.to_bytes(index, 8), g.i64([2, 4, -1, 1], "index_shape"))
        fixed = np.zeros((2, 4, 1, len(columns)), np.int32)
        fixed[0, :, 0, :] = np.array([byte_digits(b) for _, b in columns]).T
        fixed[1, :, 0, :] = np.array([byte_digits(d) for d, _ in columns]).T
        n = g.op("Shape", index, start=0, end=1)
        width = g.i64([len(columns)], "columns")
        shape = g.op("Concat", g.i64([2, 4], "word_shape"), n, width, axis=0)
        counter = g.op(
            "Concat",
            g.op("Expand", g.const(fixed, np.int32, "blocks"), shape),
            g.op("Expand", idx, shape),
            axis=0,
        )
        return counter, key


class PhiloxDraws(PhiloxOps):
    """What the sampler graph takes from the generator: draws of normals (Box-Muller in float32,
    runtime/philox.py's order) and random classes, every draw of a graph in one pass."""

    def top23(self, words: str) -> str:
        """int32 [W, ...]: each word's top 23 bits, w >> 9, from its bytes [W, 4, ...]."""
        g = self.g
        b = g.op("Split", words, axis=1, num_outputs=4, outputs=4)
        half = g.op("Div", b[1], g.const(2, np.int32, "c2"))
        high = g.op(
            "Add",
            g.op("Mul", b[2], g.const(128, np.int32, "c128")),
            g.op("Mul", b[3], g.const(32768, np.int32, "c32768")),
        )
        return g.op("Squeeze", g.op("Add", half, high), g.i64([1], "axis1"))

    def draws(
        self, seed: str, index: str, draws: list[int], count: int, k: int = 0
    ) -> tuple[list[str], str | None]:
        """Every draw a graph needs in one pass of Philox (its ~600 operations cost the same for
        one column or thousands): float32 [N, count] per draw in ``draws`` and, with ``k``
        classes, each image's random class (int64 [N]); runtime/philox.py ``normals``/``classes``."""
        g = self.g
        blocks = -(-count // 4)
        columns = [(d, b) for d in draws for b in range(blocks)] + ([(CLASS_DRAW, 0)] if k else [])
        words = self.philox(*self.counter_and_key(seed, index, columns))
        labels = None
        if k:
            split = g.i64([len(columns) - 1, 1], "class_split")
            words, last = g.op("Split", words, split, axis=3, outputs=2)
            labels = self.labels(last, k)
        z = self.box_muller(words)  # [N, C, 4]
        per_draw = g.op("Reshape", z, g.i64([0, len(draws), blocks * 4], "per_draw"))
        out = []
        for j in range(len(draws)):
            one = g.op("Gather", per_draw, g.i64(j, "draw_index"), axis=1)  # [N, blocks * 4]
            if blocks * 4 != count:
                one = g.op("Slice", one, g.i64([0]), g.i64([count]), g.i64([1], "axis1"))
            out.append(one)
        return out, labels

    def box_muller(self, words: str) -> str:
        """Words' bytes [4, 4, N, C] to normals [N, C, 4], in runtime/philox.py's order."""
        g = self.g
        k = g.op("Cast", self.top23(words), to=1)  # [4, N, C] float32, exact below 2^23
        u = g.op("Mul", g.op("Add", k, g.f32(0.5, "half")), g.f32(2.0**-23, "two_m23"))
        u0, u1, u2, u3 = g.op("Split", u, axis=0, num_outputs=4, outputs=4)
        out = []
        for u_r, u_theta in ((u0, u1), (u2, u3)):
            r = g.op("Sqrt", g.op("Mul", g.f32(-2.0, "minus2"), g.op("Log", u_r)))
            theta = g.op("Mul", u_theta, g.f32(np.float32(2 * np.pi), "two_pi"))
            out += [g.op("Mul", r, g.op("Cos", theta)), g.op("Mul", r, g.op("Sin", theta))]
        return g.op("Transpose", g.op("Concat", *out, axis=0), perm=[1, 2, 0])

    def labels(self, words: str, k: int) -> str:
        """int64 [N] from the class draw's words [4, 4, N, 1]: floor((w0 >> 9) k / 2^23)."""
        g = self.g
        top = self.top23(g.op("Gather", words, g.i64([0]), axis=0))  # [1, N, 1], < 2^23
        label = g.op("Div", g.op("Mul", top, g.const(k, np.int32, "k")), g.const(1 << 23, np.int32))
        return g.op("Cast", g.op("Reshape", label, g.i64([-1], "flat1")), to=7)
