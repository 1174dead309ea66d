"""benchmarks/peers.py: its timing, table and the diffusers child process run end to end on tiny
inputs (the numbers themselves are a benchmark: docs/BENCHMARKS.md)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from tests.helpers import REPO


def peers():
    spec = importlib.util.spec_from_file_location("peers", REPO / "benchmarks" / "peers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_per_call_times_every_contender_at_every_batch():
    seen = []

    def slow(x, t):
        seen.append(len(x))
        return x

    timed = peers().per_call({"a": slow, "b": lambda x, t: x}, [2, 3], 2, 2, (1, 4, 4))
    assert set(timed) == {"a", "b"} and set(timed["a"]) == {2, 3}
    for row in (timed["a"][2], timed["b"][3]):
        assert row.keys() == {"first_call_s", "p50", "p90"} and 0 <= row["p50"] <= row["p90"]
    assert seen == [2] * 5 + [3] * 5  # a warm-up, then 2 rounds of 2 calls


def test_the_table_reports_peak_share_and_sampling():
    result = {
        "matmul_flops": 100e9,
        "flops_per_image": 1e9,
        "per_call": {"ort": {16: {"p50": 200.0, "p90": 250.0, "first_call_s": 0.1}}},
        "sampling_batch": 16,
        "sampling": {"ort": {"images_per_s": 50.0}},
    }
    text = peers().table(result)
    assert (
        "| ort | 16 | 200.0 | 250.0 | 80 | 80% | 0.1 |" in text
    )  # 16e9 FLOP in 0.2 s of 100 GFLOP/s
    assert "| ort | 50.0 |" in text


@pytest.mark.slow
def test_the_diffusers_child_process_samples_and_saves_a_picture(random_checkpoint, tmp_path):
    module = peers()
    module.diffusers_unet(random_checkpoint, tmp_path / "folder")
    module.diffusers_process(str(tmp_path / "folder"), 3, False, str(tmp_path))
    from PIL import Image

    picture = np.asarray(Image.open(tmp_path / "samples.png"))
    assert picture.shape == (28, 3 * 28)  # one row of the three images
