import json

import numpy as np
import pytest
from ddpm_deploy.runtime.flops import count_flops
from onnx import TensorProto, helper, save

from tests.helpers import assert_one_line_error, run_cli


def _conv(k, cin, cout, hw):  # FLOPs (2 per MAC) of a conv producing cout x hw x hw
    return 2 * cout * hw * hw * cin * k * k


def _convt(k, cin, cout, hw_in):  # each input element scatters into cout * k * k outputs
    return 2 * cin * hw_in * hw_in * cout * k * k


def test_one_conv_layer_by_hand(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 28, 28])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10, 28, 28])
    w = helper.make_tensor("w", TensorProto.FLOAT, [10, 1, 3, 3], np.zeros(90, np.float32))
    node = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])
    path = tmp_path / "conv.onnx"
    save(helper.make_model(helper.make_graph([node], "g", [x], [y], [w])), str(path))
    assert count_flops(path) == {"Conv": 2 * 10 * 28 * 28 * 1 * 9, "total": 141_120}


def test_reference_unet_total(random_onnx):
    blocks = {  # (c_in, c_out) of each 3x3 conv, per resolution, from the seed article
        28: [(1, 10), (10, 10)] + [(10, 10)] * 4 + [(20, 10), (10, 10)] + [(10, 10)] * 4,
        14: [(10, 20)] + [(20, 20)] * 5 + [(40, 20), (20, 20), (20, 10)] + [(10, 10)] * 3,
        7: [(20, 40)] + [(40, 40)] * 5 + [(80, 40), (40, 40), (40, 20)] + [(20, 20)] * 3,
        3: [(40, 20)] + [(20, 20)] * 3 + [(20, 40), (40, 40)],
    }
    conv = sum(_conv(3, ci, co, hw) for hw, pairs in blocks.items() for ci, co in pairs)
    conv += _conv(4, 10, 10, 14) + _conv(4, 20, 20, 7) + _conv(2, 40, 40, 6) + _conv(4, 40, 40, 3)
    conv += _conv(3, 10, 1, 28)  # conv_out
    convt = (
        _convt(4, 40, 40, 3) + _convt(2, 40, 40, 6) + _convt(4, 20, 20, 7) + _convt(4, 10, 10, 14)
    )
    gemm = sum(2 * (100 * c + c * c) for c in (1, 10, 20, 40, 80, 40, 20))  # the time MLPs
    got = count_flops(random_onnx)
    assert got["Conv"] == conv and got["ConvTranspose"] == convt and got["Gemm"] == gemm
    assert got["total"] == conv + convt + gemm
    assert 45e6 < got["total"] < 55e6  # the seed article's UNet: about 50 MFLOP per image per step


def test_bench_runs_end_to_end(random_onnx, random_checkpoint):
    result = run_cli("bench", "--model", random_onnx, "--checkpoint", random_checkpoint,
                     "--backend", "ort,torch", "--batch", "1,2", "--steps", "3", "--rounds", "1",
                     "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)  # progress lines go to stderr
    assert [(r["backend"], r["batch"]) for r in out["rows"]] == [
        ("ort", 1), ("torch", 1), ("ort", 2), ("torch", 2)
    ]  # fmt: skip
    for r in out["rows"]:
        assert r["steps_timed"] == 3 and 0 <= r["overhead_share"] < 1
        assert 0 < r["noise_share"] < 1  # measured, a share of the step (medians: not comparable
        # with overhead_share, a ratio of sums, on a loaded machine)
        assert r["achieved_gflops"] > 0 and r["matmul_gflops"] > 0
    assert out["flops_per_image"] > 45e6 and out["peak_rss_mb"] > 0


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--batch", "1,x"], "--batch takes comma-separated integers"),
        (["--backend", "torch"], "the torch backend needs --checkpoint"),
        (["--steps", "1"], "bench needs --steps >= 2"),
    ],
)
def test_bench_bad_input(random_onnx, args, fragment):
    assert_one_line_error(run_cli("bench", "--model", random_onnx, *args), fragment)


def test_bench_train_compares_both_loops(tmp_path):
    from tests.helpers import write_idx

    write_idx(tmp_path / "FashionMNIST" / "raw", n=256)
    result = run_cli("bench-train", "--data-root", tmp_path, "--batch-size", "32", "--steps", "2",
                     "--rounds", "1")  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out["images_per_s"]) == {"ddpm-deploy", "seed DataLoader"}
    assert all(v > 0 for v in out["images_per_s"].values()) and out["ratio"] > 0


def test_ort_profile_reports_kernel_time_by_op(random_onnx):
    import importlib.util

    from tests.helpers import REPO

    spec = importlib.util.spec_from_file_location(
        "ort_profile", REPO / "benchmarks" / "ort_profile.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ms = module.profile(str(random_onnx), batch=2, runs=1)
    assert ms["Conv"] > 0 and ms["LayerNormalization"] > 0
    timed = module.compare_options(str(random_onnx), batch=2, runs=1, rounds=1)
    assert set(timed) == set(module.OPTIONS) and all(v > 0 for v in timed.values())
    looped = module.loop_levers(str(random_onnx), batch=2, rounds=1, names=["no thread spinning"])
    assert list(looped) == ["no thread spinning"] and looped["no thread spinning"] > 0
    opened = module.startup(str(random_onnx), rounds=1)
    assert len(opened) == 2 and all(v > 0 for v in opened.values())
