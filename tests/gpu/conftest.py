"""The GPU suite: `pytest -m gpu tests/gpu` on a machine with an NVIDIA GPU, TensorRT and cuda-python.

Where none of that exists, every test here is skipped with the reason. Where a GPU is visible
(/dev/nvidia0, nvidia-smi, a Jetson's /etc/nv_tegra_release), or DDPM_DEPLOY_REQUIRE_GPU=1 is set,
a suite that cannot run fails instead: a broken CUDA install must not look green.
"""

import os

import pytest
from ddpm_deploy.hardware.gpu import gpu_evidence, has_cuda_python, has_module


def gpu_required() -> bool:
    return os.environ.get("DDPM_DEPLOY_REQUIRE_GPU", "") not in ("", "0")


def suite_state() -> tuple[str, str]:
    """('run', ''), ('skip', reason) or ('fail', reason) for the GPU-marked tests."""
    missing = [m for m in ("tensorrt", "polygraphy") if not has_module(m)]
    missing += [] if has_cuda_python() else ["cuda-python"]
    reason = ""
    if missing:
        reason = f"needs {', '.join(missing)} (the trt-cu12 or trt-cu13 extra) and an NVIDIA GPU"
    else:
        try:
            from ddpm_deploy.hardware.gpu import current_gpu, import_tensorrt

            import_tensorrt()
            current_gpu()
        except Exception as e:  # noqa: BLE001 - any failure decides between skip and fail
            reason = f"no usable CUDA GPU: {e}"
    if not reason:
        return "run", ""
    evidence = gpu_evidence()
    if gpu_required() or (evidence and not missing):
        why = "DDPM_DEPLOY_REQUIRE_GPU is set" if gpu_required() else ", ".join(evidence)
        return "fail", f"{reason} although a GPU is expected here ({why})"
    return "skip", reason


def pytest_runtest_setup(item):
    """Before any fixture (the module's engines) is built."""
    if item.get_closest_marker("gpu") is None:
        return
    action, reason = suite_state()
    if action == "fail":
        pytest.fail(reason, pytrace=False)
    if action == "skip":
        pytest.skip(reason)
