"""The runtime's TensorRT/CUDA code paths that a CPU can reach (the trt backend, ONNX Runtime's GPU
providers), driven by fakes of tensorrt, cuda-python and onnxruntime-gpu. Real hardware has not run
this code (README). CUDA detection and doctor: tests/core/test_gpu_fakes.py; the engine build's
helpers: tests/export/test_engine.py."""

import ctypes
import sys
import types

import numpy as np
import pytest

from ddpm_deploy import gpu
from ddpm_deploy.card import make_card
from ddpm_deploy.engine_cache import BatchProfile, EngineKey, write_sidecar
from ddpm_deploy.errors import UserError
from ddpm_deploy.schedule import Schedule


# -- a fake tensorrt engine with declared dtypes, and a fake CUDA with host memory as "device" -----
class FakeCuda:
    """cudaMalloc hands out keys of a dict of bytearrays; copies move real bytes."""

    class cudaMemcpyKind:  # noqa: N801 - cuda-python's names
        cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost = 1, 2

    def __init__(self):
        self.memory, self.freed, self.streams = {}, [], 0

    def cudaMalloc(self, size):  # noqa: N802
        ptr = 1000 + len(self.memory)
        self.memory[ptr] = bytearray(size)
        return 0, ptr

    def cudaFree(self, ptr):  # noqa: N802
        self.freed.append(ptr)
        return (0,)

    def cudaStreamCreate(self):  # noqa: N802
        self.streams += 1
        return 0, 7

    def cudaStreamDestroy(self, stream):  # noqa: N802
        self.streams -= 1
        return (0,)

    def cudaStreamSynchronize(self, stream):  # noqa: N802
        return (0,)

    def cudaMemcpyAsync(self, dst, src, nbytes, kind, stream):  # noqa: N802
        if kind == self.cudaMemcpyKind.cudaMemcpyHostToDevice:
            self.memory[dst][:nbytes] = ctypes.string_at(src, nbytes)
        else:
            ctypes.memmove(dst, bytes(self.memory[src][:nbytes]), nbytes)
        return (0,)


def fake_tensorrt(version: str, t_dtype=np.int32, conditional=False):
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.TensorIOMode = types.SimpleNamespace(INPUT="in", OUTPUT="out")
    trt.nptype = lambda dtype: dtype  # the fake engine declares numpy dtypes directly
    declared = {"x": np.float32, "t": t_dtype, "eps": np.float32}
    if conditional:
        declared["y"] = t_dtype

    class Context:
        def __init__(self, cuda):
            self.cuda, self.shapes, self.addresses = cuda, {}, {}

        def set_input_shape(self, name, shape):
            self.shapes[name] = tuple(shape)
            return shape[0] <= 100  # the engine's profile ends at 100

        def set_tensor_address(self, name, ptr):
            self.addresses[name] = ptr

        def execute_async_v3(self, stream):
            n, pixels = self.shapes["x"][0], int(np.prod(self.shapes["x"][1:]))
            mem = self.cuda.memory
            x = np.frombuffer(mem[self.addresses["x"]], np.float32)[: n * pixels].reshape(n, pixels)
            t = np.frombuffer(mem[self.addresses["t"]], declared["t"])[:n]
            eps = x * 2 + t[:, None].astype(np.float32)
            mem[self.addresses["eps"]][: eps.nbytes] = eps.astype(np.float32).tobytes()
            return True

    class Engine:
        num_io_tensors = len(declared)

        def __init__(self, cuda):
            self.cuda = cuda

        def get_tensor_name(self, i):
            return list(declared)[i]

        def get_tensor_mode(self, name):
            return "out" if name == "eps" else "in"

        def get_tensor_dtype(self, name):
            return declared[name]

        def create_execution_context(self):
            return Context(self.cuda)

    class Logger:
        WARNING = 2

        def __init__(self, level):
            pass

    trt.Logger, trt.Engine = Logger, Engine
    return trt


@pytest.fixture
def fake_gpu(monkeypatch, tmp_path):
    cuda = FakeCuda()
    from ddpm_deploy.runtime import trt_backend

    monkeypatch.setattr(trt_backend, "has_module", lambda name: True)
    monkeypatch.setattr(trt_backend, "has_cuda_python", lambda: True)
    monkeypatch.setattr(trt_backend, "cudart", lambda: cuda)
    monkeypatch.setattr(trt_backend, "current_gpu", lambda: gpu.GpuInfo("Orin", "8.7"))

    def install(version="10.3.0", arch=None, card_fields=None, **kw):
        trt = fake_tensorrt(version, **kw)

        class Runtime:
            def __init__(self, logger):
                pass

            def deserialize_cuda_engine(self, data):
                return trt.Engine(cuda)

        trt.Runtime = Runtime
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        engine = tmp_path / f"m{version}.engine"
        engine.write_bytes(b"engine")
        arch = arch or {"name": "reference-unet"}
        card = {**make_card(arch=arch, schedule=Schedule(), dataset="mnist"), **(card_fields or {})}
        key = EngineKey("ab" * 32, version, "Orin", "8.7", "fp32", BatchProfile(1, 16, 100))
        write_sidecar(engine, key, card, 1.0)
        return engine

    return cuda, install


def test_inputs_are_cast_to_the_engines_declared_dtypes(fake_gpu):
    from ddpm_deploy.runtime.trt_backend import TrtDenoiser

    cuda, install = fake_gpu
    den = TrtDenoiser(install(t_dtype=np.int32))
    assert den.io["t"].dtype == np.int32  # as a TensorRT 8.6-era engine declares it
    x = np.random.default_rng(0).standard_normal((3, 1, 28, 28), dtype=np.float32)
    t = np.array([0, 5, 999], dtype=np.int64)
    eps = den(x, t)
    assert eps.dtype == np.float32 and eps.shape == (3, 1, 28, 28)
    np.testing.assert_array_equal(eps, x * 2 + t[:, None, None, None].astype(np.float32))
    t_buffer = cuda.memory[den._buffers[3][0]["t"]]
    assert len(t_buffer) == 3 * 4  # sized from the engine's int32, not a hard-coded int64
    den.close()
    assert cuda.streams == 0 and len(cuda.freed) == 3


def test_the_engines_card_carries_the_learned_sampler(fake_gpu, monkeypatch):
    """The TensorRT path reads the sampler spec and Gaussian statistics from the engine's sidecar
    card: `sample`'s settings resolve to the spec, the analytic steps make no engine call."""
    from ddpm_deploy.runtime.gaussian import fit
    from ddpm_deploy.runtime.generate import generate_chunks
    from ddpm_deploy.runtime.sampler_settings import SamplerSettings
    from ddpm_deploy.runtime.trt_backend import TrtDenoiser

    rng = np.random.default_rng(0)
    stats = fit(rng.uniform(-1, 1, (50, 1, 28, 28)), np.zeros(50, np.int64), 0, rank=4)
    spec = {"sampler": "dpm++2m", "timesteps": [999, 800, 400, 0], "analytic": 2, "mix": [0, 0.1, 0.2, 0.0]}  # fmt: skip
    cuda, install = fake_gpu
    den = TrtDenoiser(install(card_fields={"sampler": spec, "gaussian": stats.to_card()}))
    calls = []
    real_call = TrtDenoiser.__call__
    monkeypatch.setattr(TrtDenoiser, "__call__", lambda self, x, t, y=None: calls.append(int(t[0])) or real_call(self, x, t, y))  # fmt: skip
    settings = SamplerSettings().for_model(den.card)
    assert (settings.timesteps, settings.analytic, settings.mix) == ((999, 800, 400, 0), 2, (0, 0.1, 0.2, 0.0))  # fmt: skip
    chunks = list(generate_chunks(den, settings, 3, seed=0, labels=None, guidance=1.0, batch=3, desc="", progress=False))  # fmt: skip
    assert calls == [400, 0] and chunks[0][1].shape == (3, 1, 28, 28)
    den.close()


def test_buffers_are_sized_from_the_cards_image_shape(fake_gpu):
    from ddpm_deploy.runtime.trt_backend import TrtDenoiser

    cuda, install = fake_gpu
    den = TrtDenoiser(install(arch={"name": "resunet", "channels": 3, "image_size": 32}))
    assert den.image_shape == (3, 32, 32)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32), dtype=np.float32)
    t = np.array([1, 999], dtype=np.int64)
    eps = den(x, t)
    assert eps.shape == (2, 3, 32, 32)
    np.testing.assert_array_equal(eps, x * 2 + t[:, None, None, None].astype(np.float32))
    ptrs = den._buffers[2][0]
    assert len(cuda.memory[ptrs["x"]]) == len(cuda.memory[ptrs["eps"]]) == 2 * 3 * 32 * 32 * 4
    den.close()


def test_a_shape_the_engine_refuses_is_one_line(fake_gpu):
    from ddpm_deploy.runtime import trt_backend

    _, install = fake_gpu
    den = trt_backend.TrtDenoiser(install())
    den.profile = BatchProfile(1, 16, 200)  # a sidecar that claims more than the engine takes
    with pytest.raises(UserError, match="TensorRT refused shape"):
        den(np.zeros((150, 1, 28, 28), np.float32), np.zeros(150, np.int64))


def test_tensorrt_older_than_10_is_refused(fake_gpu):
    from ddpm_deploy.runtime.trt_backend import TrtDenoiser

    _, install = fake_gpu
    with pytest.raises(
        UserError, match=r"TensorRT 8\.6\.2 is too old: ddpm-deploy needs TensorRT 10"
    ):
        TrtDenoiser(install("8.6.2"))


def test_an_engine_without_the_label_input_is_refused_for_a_conditional_card(fake_gpu, tmp_path):
    from ddpm_deploy.runtime.trt_backend import check_io, engine_io

    trt = fake_tensorrt("10.3.0")
    io = engine_io(trt.Engine(None), trt)
    check_io(io, conditional=False, path=tmp_path)
    with pytest.raises(UserError, match=r"takes \['t', 'x', 'y'\]"):
        check_io(io, conditional=True, path=tmp_path)


# -- ONNX Runtime GPU providers --------------------------------------------------------------------
def test_ort_tensorrt_provider_order_and_options(tmp_path):
    from ddpm_deploy.runtime.ort_backend import provider_list

    providers = provider_list("tensorrt", tmp_path / "m.onnx", ("x", "t", "y"), (1, 28, 28))
    (name, options), *rest = providers
    assert name == "TensorrtExecutionProvider"
    assert rest == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert options["trt_engine_cache_enable"] and options["trt_engine_cache_path"].endswith(
        "ort_trt_cache"
    )
    assert options["trt_fp16_enable"] is False
    assert options["trt_profile_max_shapes"] == "x:2000x1x28x28,t:2000,y:2000"
    (_, rgb), *_ = provider_list("tensorrt", tmp_path / "m.onnx", ("x", "t"), (3, 32, 32))
    assert rgb["trt_profile_min_shapes"] == "x:1x3x32x32,t:1"
    assert provider_list("cuda", tmp_path / "m.onnx") == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]


def test_ort_gpu_preloads_the_pip_cuda_libraries(monkeypatch, random_onnx):
    """onnxruntime-gpu 1.21+ needs preload_dlls() to find pip's CUDA; the fallback is then refused."""
    import onnxruntime as ort
    from ddpm_deploy.runtime.ort_backend import OrtDenoiser

    calls = []
    monkeypatch.setattr(ort, "preload_dlls", lambda *a, **k: calls.append(1), raising=False)
    monkeypatch.setattr(
        ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    real = ort.InferenceSession

    def cpu_only(path, options=None, providers=None):
        return real(path, options, providers=["CPUExecutionProvider"])  # as a failed CUDA load does

    monkeypatch.setattr(ort, "InferenceSession", cpu_only)
    with pytest.raises(UserError, match="could not start CUDAExecutionProvider and fell back"):
        OrtDenoiser(random_onnx, provider="cuda")
    assert calls == [1]
