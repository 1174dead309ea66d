"""The GPU suite: `pytest -m gpu tests/gpu` on a machine with an NVIDIA GPU, TensorRT and cuda-python.

Elsewhere every test here is skipped with the reason.
"""

import pytest

from ddpm_deploy.gpu import has_module


def pytest_collection_modifyitems(config, items):
    missing = [m for m in ("tensorrt", "polygraphy", "cuda") if not has_module(m)]
    reason = None
    if missing:
        reason = f"needs {', '.join(missing)} (pip install 'ddpm-deploy[trt]') and an NVIDIA GPU"
    else:
        try:
            from ddpm_deploy.gpu import current_gpu

            current_gpu()
        except Exception as e:  # noqa: BLE001
            reason = f"no usable CUDA GPU: {e}"
    for item in items:
        if reason and item.get_closest_marker("gpu"):
            item.add_marker(pytest.mark.skip(reason=reason))
