"""The CUDA code paths of the core that a CPU can reach (cuda-python detection, CUDA errors,
nvidia-smi, doctor's TensorRT line), driven by fakes. Real hardware has not run this code (README)."""

import subprocess
import sys
import types

import pytest
from ddpm_deploy.hardware import gpu


# -- cuda-python detection, CUDA errors, nvidia-smi, doctor ---------------------------------------
def test_a_bare_cuda_namespace_is_not_cuda_python(monkeypatch, tmp_path):
    (tmp_path / "cuda" / "pathfinder").mkdir(parents=True)  # what cuda-pathfinder alone installs
    (tmp_path / "cuda" / "pathfinder" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m == "cuda" or m.startswith("cuda.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(gpu, "CUDA_PYTHON_MODULES", ("cuda.bindings_absent", "cuda.cudart_absent"))
    assert gpu.has_module("cuda")  # the old check would have said yes
    assert not gpu.has_cuda_python()


def test_a_cuda_driver_mismatch_names_both_versions(monkeypatch):
    class Err:
        name = "cudaErrorInsufficientDriver"

        def __int__(self):
            return 35

    rt = types.SimpleNamespace(
        cudaDriverGetVersion=lambda: (0, 12020), cudaRuntimeGetVersion=lambda: (0, 13000)
    )
    monkeypatch.setattr(gpu, "cudart", lambda: rt)
    with pytest.raises(gpu.CudaError) as e:
        gpu.check((Err(),), "cudaGetDeviceCount")
    assert "driver supports CUDA 12.2, cuda-python's runtime is CUDA 13.0" in str(e.value)


def test_a_failing_nvidia_smi_lists_no_gpu(monkeypatch):
    monkeypatch.setattr(gpu.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    failed = subprocess.CompletedProcess(
        [], 9, stdout="NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n",
        stderr="",
    )  # fmt: skip
    monkeypatch.setattr(gpu.subprocess, "run", lambda *a, **k: failed)
    lines, error = gpu.nvidia_smi()
    assert lines == [] and error.startswith("nvidia-smi exited 9: NVIDIA-SMI has failed")


def test_doctor_never_says_trt_ready_when_cuda_fails(monkeypatch):
    from ddpm_deploy.hardware import doctor

    monkeypatch.setattr(doctor, "has_cuda_python", lambda: True)
    gpus = {"nvidia_smi": ["NVIDIA A100, 8.0, 550.1"], "cuda_error": "cudaGetDeviceCount failed"}
    assert doctor._trt_state("10.3.0", gpus).startswith("CUDA fails here")
    assert doctor._trt_state("10.3.0", {"nvidia_smi": ["NVIDIA A100"]}) == "no CUDA GPU is visible"
    ok = {"nvidia_smi": [], "cuda_devices": [{"name": "Orin"}]}
    assert doctor._trt_state("10.3.0", ok) == "ready"
    assert "too old" in doctor._trt_state("8.6.2", ok)
