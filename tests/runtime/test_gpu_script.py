"""benchmarks/gpu_sampling.py on the CPU: its eager half runs, and its step is the runtime's DDIM step."""

import importlib.util

import numpy as np
import torch

from tests.helpers import REPO


def _script():
    spec = importlib.util.spec_from_file_location(
        "gpu_sampling", REPO / "benchmarks" / "gpu_sampling.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_eager_smoke_on_cpu(random_checkpoint, capsys):
    result = _script().main(["--checkpoint", str(random_checkpoint), "--device", "cpu",
                             "--batch", "1,2", "--steps", "3", "--rounds", "1", "--json"])  # fmt: skip
    assert [r["batch"] for r in result["rows"]] == [1, 2]
    assert all(r["eager_ms"] > 0 and "graph_ms" not in r for r in result["rows"])
    assert result["matmul_fp32_tflops"] > 0 and result["copy_gb_s"] > 0


def test_its_step_is_the_runtime_ddim_step():
    from ddpm_deploy.runtime.samplers import ddim_step

    from ddpm_deploy.schedule import Schedule

    gs = _script()
    schedule = Schedule()
    ts, coefs = gs.ddim_coefficients(schedule, 10)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 1, 28, 28), dtype=np.float32) * 2
    eps = rng.standard_normal(x.shape, dtype=np.float32)
    for i in (0, 4, 9):
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        want = ddim_step(x, eps, ts[i], t_prev, schedule, None, eta=0.0, clip=True)
        got = gs.ddim_step(
            lambda x_, t_: torch.from_numpy(eps), torch.from_numpy(x), None, coefs[i]
        )
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-5)


def test_fp32_rows_run_without_tf32_and_leave_the_settings_alone():
    import torch

    from benchmarks.gpu_sampling import matmul_flops, true_fp32

    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    with true_fp32():
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    assert matmul_flops(torch.device("cpu"), n=64, repeats=1) > 0
    assert torch.backends.cuda.matmul.allow_tf32  # restored, not switched off for the process
