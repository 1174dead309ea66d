"""The GPU suite fails, rather than skips, where a GPU is expected but CUDA does not work."""

import pytest

import tests.gpu.conftest as gate


@pytest.fixture
def broken_cuda(monkeypatch):
    """TensorRT, Polygraphy and cuda-python installed, but CUDA cannot open a device."""
    import ddpm_deploy.hardware.gpu as gpu

    monkeypatch.setattr(gate, "has_module", lambda name: True)
    monkeypatch.setattr(gate, "has_cuda_python", lambda: True)
    monkeypatch.setattr(gpu, "import_tensorrt", lambda: None)

    def fails(device=0):
        raise gpu.CudaError("cudaGetDeviceProperties failed with cudaErrorInsufficientDriver")

    monkeypatch.setattr(gpu, "current_gpu", fails)


def test_skips_where_there_is_no_gpu(broken_cuda, monkeypatch):
    monkeypatch.setattr(gate, "gpu_evidence", lambda: [])
    monkeypatch.delenv("DDPM_DEPLOY_REQUIRE_GPU", raising=False)
    action, reason = gate.suite_state()
    assert action == "skip" and "cudaErrorInsufficientDriver" in reason


def test_fails_where_a_gpu_is_visible(broken_cuda, monkeypatch):
    monkeypatch.setattr(gate, "gpu_evidence", lambda: ["/dev/nvidia0"])
    monkeypatch.delenv("DDPM_DEPLOY_REQUIRE_GPU", raising=False)
    action, reason = gate.suite_state()
    assert action == "fail" and "/dev/nvidia0" in reason and "InsufficientDriver" in reason


def test_fails_when_required_even_without_the_packages(monkeypatch):
    monkeypatch.setattr(gate, "has_module", lambda name: False)
    monkeypatch.setattr(gate, "gpu_evidence", lambda: [])
    monkeypatch.setenv("DDPM_DEPLOY_REQUIRE_GPU", "1")
    action, reason = gate.suite_state()
    assert action == "fail" and "needs tensorrt, polygraphy" in reason


def test_a_gpu_without_tensorrt_installed_skips(monkeypatch):
    """A GPU box where nobody installed the trt extra: nothing is broken, the suite just skips."""
    monkeypatch.setattr(gate, "has_module", lambda name: False)
    monkeypatch.setattr(gate, "gpu_evidence", lambda: ["nvidia-smi lists a GPU"])
    monkeypatch.delenv("DDPM_DEPLOY_REQUIRE_GPU", raising=False)
    assert gate.suite_state()[0] == "skip"
