"""The sampler file in Node.js: examples/node/sample.mjs (onnxruntime-node and pngjs from npm, no
Python) writes the samples.png `ddpm-deploy sample` writes for the same seed, grey and colour.

Needs node, and `npm ci --prefix examples/node` run first (.ci/run does); skips without them.
"""

from __future__ import annotations

import shutil
import subprocess

import imageio.v3 as iio
import numpy as np
import pytest

from tests.helpers import REPO, run_cli, tiny_shaped_model

EXAMPLE = REPO / "examples" / "node"


@pytest.fixture(scope="module")
def node():
    found = shutil.which("node")
    if found is None or shutil.which("npm") is None:
        pytest.skip("needs node and npm (Node.js 20 or later) for examples/node")
    if not (EXAMPLE / "node_modules" / "onnxruntime-node").is_dir():
        pytest.skip("examples/node/node_modules missing: run `npm ci --prefix examples/node`")
    return found


def same_picture(a, b):
    a, b = iio.imread(a).astype(int), iio.imread(b).astype(int)
    assert a.shape == b.shape
    levels = np.abs(a - b)
    assert (levels == 0).mean() >= 0.999 and levels.max() <= 1, (levels.mean(), levels.max())


def node_picture(node, sampler, seed, cwd):
    proc = subprocess.run([node, str(EXAMPLE / "sample.mjs"), str(sampler), str(seed)],
                          cwd=cwd, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "wrote samples.png: 16 images of seed" in proc.stdout
    return cwd / "samples.png"


@pytest.mark.slow
@pytest.mark.parametrize("model", ["default", "rgb32"])
def test_the_node_example_writes_samples_picture(node, model, tmp_path):
    """The shipped default (grey 28x28) and a random 3x32x32 model with classes: the Node picture
    equals `sample --seed 7`'s (>= 99.9% of pixels equal, never more than one level apart)."""
    args = []
    if model == "rgb32":
        pytest.importorskip("torch")
        _, onnx, _ = tiny_shaped_model(tmp_path, 3, 32, "folder", ["red", "green", "blue"])
        args = [str(onnx)]
    sampler = tmp_path / "sampler.onnx"
    result = run_cli("export-sampler", *args, "-o", sampler)
    assert result.exit_code == 0, result.output
    local = tmp_path / "numpy"
    result = run_cli("sample", *(["--model", *args] if args else []), "--seed", "7",
                     "--out", local, "--frames", "2")  # fmt: skip
    assert result.exit_code == 0, result.output
    (tmp_path / "node").mkdir()
    same_picture(node_picture(node, sampler, 7, tmp_path / "node"), local / "samples.png")


def test_the_node_example_is_short_and_pinned():
    """At most 30 lines; exact versions in package.json, the lockfile committed beside it."""
    import json

    assert len((EXAMPLE / "sample.mjs").read_text().splitlines()) <= 30
    deps = json.loads((EXAMPLE / "package.json").read_text())["dependencies"]
    assert set(deps) == {"onnxruntime-node", "pngjs"}
    assert all(v[0].isdigit() for v in deps.values()), deps  # no ^ or ~ ranges
    lock = json.loads((EXAMPLE / "package-lock.json").read_text())["packages"]
    for name, version in deps.items():
        assert lock[f"node_modules/{name}"]["version"] == version
