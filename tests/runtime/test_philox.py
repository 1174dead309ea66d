"""The shared generator (runtime/philox.py) against Random123's known answers and the vectors
docs/NOISE.md publishes, its statistics, and image i depending only on (seed, i)."""

from pathlib import Path

import numpy as np
import pytest
from ddpm_deploy.runtime import philox
from ddpm_deploy.runtime.guidance import random_labels
from ddpm_deploy.runtime.noise import PerImageNoise

ROOT = Path(__file__).resolve().parents[2]


def words(text: str) -> np.ndarray:
    return np.array([int(w, 16) for w in text.split()], np.uint64)


# Random123 tests/kat_vectors, the philox4x32 lines (rounds, counter, key, result)
KAT = [
    (7, "00000000 00000000 00000000 00000000", "00000000 00000000", "5f6fb709 0d893f64 4f121f81 4f730a48"),
    (7, "ffffffff ffffffff ffffffff ffffffff", "ffffffff ffffffff", "5207ddc2 45165e59 4d8ee751 8c52f662"),
    (7, "243f6a88 85a308d3 13198a2e 03707344", "a4093822 299f31d0", "4dfccaba 190a87f0 c47362ba b6b5242a"),
    (10, "00000000 00000000 00000000 00000000", "00000000 00000000", "6627e8d5 e169c58d bc57ac4c 9b00dbd8"),
    (10, "ffffffff ffffffff ffffffff ffffffff", "ffffffff ffffffff", "408f276d 41c83b0e a20bc7c6 6d5451fd"),
    (10, "243f6a88 85a308d3 13198a2e 03707344", "a4093822 299f31d0", "d16cfe09 94fdcceb 5001e420 24126ea1"),
]  # fmt: skip


@pytest.mark.parametrize("rounds,counter,key,expected", KAT)
def test_known_answers(rounds, counter, key, expected):
    got = philox.philox4x32(words(counter), words(key), rounds=rounds)
    assert got.tolist() == words(expected).tolist()


# docs/NOISE.md's table: seed, image, draw, block 0's words, its four normals
VECTORS = [
    (0, 0, 0, "6627e8d5 e169c58d bc57ac4c 9b00dbd8", "0.991138 -0.924662 -0.617609 -0.482068"),
    (0, 1, 0, "844515e1 f08d6eaa 0f19c053 83f875f0", "1.067590 -0.425344 -2.367973 -0.231496"),
    (0, 0, 1, "6ad0c5ec ea236249 73a459f5 074944b3", "1.136368 -0.675883 1.240592 0.224251"),
    (1, 0, 0, "e3e80670 e50a0ebc 95f222c0 b615aa27", "0.380401 -0.296278 -0.249233 -1.003837"),
    (2**63 - 1, 2**40 + 7, 3, "6ba36a36 595bd999 1229336f 3134e792", "-0.767418 1.069519 0.817004 2.150422"),
]  # fmt: skip


@pytest.mark.parametrize("seed,index,draw,block,values", VECTORS)
def test_published_vectors(seed, index, draw, block, values):
    counter, key = philox._keys_and_counters(np.array([seed]), np.array([index]), draw, 1)
    assert philox.philox4x32(counter, key)[0, 0].tolist() == words(block).tolist()
    got = philox.normals(seed, [index], draw, 4)[0]
    np.testing.assert_allclose(got, [float(v) for v in values.split()], atol=1e-6)
    doc = (ROOT / "docs" / "NOISE.md").read_text()
    assert f"| {seed} | {index} | {draw} | {block} | {values} |" in doc


def test_published_classes():
    doc = (ROOT / "docs" / "NOISE.md").read_text()
    listed = " ".join(map(str, random_labels(10, 0, 0, 16)))
    assert f"among 10 classes: {listed}." in doc


def test_normals_are_standard_normal():
    from scipy import stats

    z = philox.normals(0, np.arange(2000), 0, 784).ravel()  # 1.6 million values
    assert abs(z.mean()) < 3e-3 and abs(z.std() - 1) < 3e-3
    assert stats.kstest(z, "norm").pvalue > 1e-3
    # rows, draws and seeds are not copies or shifts of each other
    a, b = philox.normals(0, [0, 1], 0, 4096)
    c = philox.normals(0, [0], 1, 4096)[0]
    d = philox.normals(1, [0], 0, 4096)[0]
    for other in (b, c, d):
        assert abs(np.corrcoef(a, other)[0, 1]) < 0.05


def test_uniforms_stay_inside_the_open_interval():
    u = philox.uniforms(np.array([0, 1 << 9, (1 << 32) - 1], np.uint64))
    assert u.dtype == np.float32 and (u > 0).all() and (u < 1).all()
    assert np.isfinite(philox.box_muller(np.array([[0, 0, (1 << 32) - 1, 0]], np.uint64))).all()


def test_classes_are_uniform():
    from scipy import stats

    counts = np.bincount(philox.classes(5, np.arange(20000), 10), minlength=10)
    assert stats.chisquare(counts).pvalue > 1e-3


def test_image_i_depends_only_on_seed_and_i():
    whole = PerImageNoise(3, 0, 9)
    part = PerImageNoise(3, 5, 4)
    for _ in range(3):  # x_T, then two step draws
        a = whole.standard_normal((9, 1, 4, 5), np.float32)
        b = part.standard_normal((4, 1, 4, 5), np.float32)
        np.testing.assert_array_equal(a[5:], b)
    merged = PerImageNoise.for_images(np.array([3, 4]), np.array([6, 6]))
    alone = PerImageNoise(4, 6, 1).standard_normal((1, 20))
    np.testing.assert_array_equal(merged.standard_normal((2, 20))[1], alone[0])


def test_negative_seeds_and_indices_are_refused():
    with pytest.raises(ValueError):
        PerImageNoise(-1, 0, 2)
    with pytest.raises(ValueError):
        philox.normals(0, [-1], 0, 4)
