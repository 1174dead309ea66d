"""The runtime's TensorRT/CUDA code paths that a CPU can reach (the trt backend, ONNX Runtime's GPU
providers), driven by fakes of tensorrt, Polygraphy's runner and onnxruntime-gpu. Real hardware has not run
this code (README). CUDA detection and doctor: tests/core/test_gpu_fakes.py; the engine build's
helpers: tests/export/test_engine.py."""

import sys
import types

import numpy as np
import pytest
from ddpm_deploy.hardware import gpu
from ddpm_deploy.hardware.engine_cache import BatchProfile, EngineKey, write_sidecar

from ddpm_deploy.card import make_card
from ddpm_deploy.errors import UserError
from ddpm_deploy.schedule import Schedule


# -- a fake tensorrt engine with declared dtypes, and a fake Polygraphy runner around it ----------
def fake_tensorrt(version: str, t_dtype=np.int32, conditional=False):
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.TensorIOMode = types.SimpleNamespace(INPUT="in", OUTPUT="out")
    trt.nptype = lambda dtype: dtype  # the fake engine declares numpy dtypes directly
    declared = {"x": np.float32, "t": t_dtype, "eps": np.float32}
    if conditional:
        declared["y"] = t_dtype

    class Engine:
        num_io_tensors = len(declared)

        def get_tensor_name(self, i):
            return list(declared)[i]

        def get_tensor_mode(self, name):
            return "out" if name == "eps" else "in"

        def get_tensor_dtype(self, name):
            return declared[name]

    trt.Engine = Engine
    return trt


class PolygraphyException(Exception):
    """Polygraphy's own exception type is matched by name (runtime/trt_backend.py)."""


def fake_polygraphy(max_batch: int = 100):
    """polygraphy.backend.trt: EngineFromBytes (a loader: called, it deserializes) and TrtRunner,
    whose infer checks the feed dtypes against the engine as Polygraphy's check_inputs does and
    computes eps = 2 x + t; it records every feed and its activation."""
    module = types.ModuleType("polygraphy.backend.trt")
    module.feeds, module.active = [], []

    class EngineFromBytes:
        def __init__(self, data):
            self.data = data

        def __call__(self):
            if self.data != b"engine":
                raise PolygraphyException("Failed to deserialize the engine")
            return sys.modules["tensorrt"].Engine()

    class TrtRunner:
        def __init__(self, engine):
            self.engine, self.is_active = engine, False

        def activate(self):
            self.is_active = True
            module.active.append(True)

        def deactivate(self):
            self.is_active = False
            module.active.append(False)

        def infer(self, feed_dict):
            for name, value in feed_dict.items():
                if value.dtype != self.engine.get_tensor_dtype(name):
                    raise PolygraphyException(f"{name}: unexpected dtype {value.dtype}")
            n = len(feed_dict["x"])
            if n > max_batch:
                raise PolygraphyException(f"shape {feed_dict['x'].shape} is outside the profile")
            module.feeds.append(feed_dict)
            x = feed_dict["x"].reshape(n, -1)
            eps = x * 2 + feed_dict["t"][:, None].astype(np.float32)
            return {"eps": eps.reshape(feed_dict["x"].shape)}

    module.EngineFromBytes, module.TrtRunner = EngineFromBytes, TrtRunner
    return module


@pytest.fixture
def fake_gpu(monkeypatch, tmp_path):
    from ddpm_deploy.runtime import trt_backend

    polygraphy = fake_polygraphy()
    monkeypatch.setattr(trt_backend, "has_module", lambda name: True)
    monkeypatch.setattr(trt_backend, "current_gpu", lambda: gpu.GpuInfo("Orin", "8.7"))
    monkeypatch.setitem(sys.modules, "polygraphy.backend.trt", polygraphy)

    def install(version="10.3.0", arch=None, card_fields=None, engine=b"engine", **kw):
        monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(version, **kw))
        path = tmp_path / f"m{version}.engine"
        path.write_bytes(engine)
        arch = arch or {"name": "reference-unet"}
        card = {**make_card(arch=arch, schedule=Schedule(), dataset="mnist"), **(card_fields or {})}
        key = EngineKey("ab" * 32, version, "Orin", "8.7", "fp32", BatchProfile(1, 16, 100))
        write_sidecar(path, key, card, 1.0)
        return path

    return polygraphy, install


def test_inputs_are_cast_to_the_engines_declared_dtypes(fake_gpu):
    from ddpm_deploy.runtime.trt_backend import TrtDenoiser

    polygraphy, install = fake_gpu
    den = TrtDenoiser(install(t_dtype=np.int32))
    assert den.io["t"].dtype == np.int32  # as a TensorRT 8.6-era engine declares it
    x = np.random.default_rng(0).standard_normal((3, 1, 28, 28), dtype=np.float32)
    t = np.array([0, 5, 999], dtype=np.int64)
    eps = den(x, t)
    assert eps.dtype == np.float32 and eps.shape == (3, 1, 28, 28)
    np.testing.assert_array_equal(eps, x * 2 + t[:, None, None, None].astype(np.float32))
    assert polygraphy.feeds[0]["t"].dtype == np.int32  # cast, not a hard-coded int64
    den.close()
    assert polygraphy.active == [True, False]  # the runner freed its buffers and stream


def test_the_engines_card_carries_the_learned_sampler(fake_gpu, monkeypatch):
    """The TensorRT path reads the sampler spec and Gaussian statistics from the engine's sidecar
    card: `sample`'s settings resolve to the spec, the analytic steps make no engine call."""
    from ddpm_deploy.runtime.gaussian import fit
    from ddpm_deploy.runtime.generate import generate_chunks
    from ddpm_deploy.runtime.sampler_settings import SamplerSettings
    from ddpm_deploy.runtime.trt_backend import TrtDenoiser

    rng = np.random.default_rng(0)
    stats = fit(rng.uniform(-1, 1, (50, 1, 28, 28)), np.zeros(50, np.int64), 0, rank=4)
    spec = {
        "sampler": "dpm++2m",
        "timesteps": [999, 800, 400, 0],
        "analytic": 2,
        "mix": [0, 0.1, 0.2, 0.0],
    }
    polygraphy, install = fake_gpu
    den = TrtDenoiser(install(card_fields={"sampler": spec, "gaussian": stats.to_card()}))
    settings = SamplerSettings().for_model(den.card)
    assert (settings.timesteps, settings.analytic, settings.mix) == (
        (999, 800, 400, 0),
        2,
        (0, 0.1, 0.2, 0.0),
    )
    chunks = list(
        generate_chunks(
            den, settings, 3, seed=0, labels=None, guidance=1.0, batch=3, desc="", progress=False
        )
    )
    assert [int(f["t"][0]) for f in polygraphy.feeds] == [400, 0]
    assert chunks[0][1].shape == (3, 1, 28, 28)
    den.close()


def test_colour_images_keep_the_cards_shape(fake_gpu):
    from ddpm_deploy.runtime.trt_backend import TrtDenoiser

    _, install = fake_gpu
    den = TrtDenoiser(install(arch={"name": "resunet", "channels": 3, "image_size": 32}))
    assert den.image_shape == (3, 32, 32)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32), dtype=np.float32)
    t = np.array([1, 999], dtype=np.int64)
    eps = den(x, t)
    assert eps.shape == (2, 3, 32, 32)
    np.testing.assert_array_equal(eps, x * 2 + t[:, None, None, None].astype(np.float32))
    den.close()


def test_a_batch_outside_the_profile_or_a_failing_run_is_one_line(fake_gpu):
    from ddpm_deploy.runtime import trt_backend

    _, install = fake_gpu
    den = trt_backend.TrtDenoiser(install())
    with pytest.raises(UserError, match="100"):  # the sidecar's profile ends at 100
        den(np.zeros((150, 1, 28, 28), np.float32), np.zeros(150, np.int64))
    den.profile = BatchProfile(1, 16, 200)  # a sidecar that claims more than the engine takes
    with pytest.raises(UserError, match="TensorRT failed to run .* outside the profile"):
        den(np.zeros((150, 1, 28, 28), np.float32), np.zeros(150, np.int64))


def test_a_truncated_engine_is_one_line(fake_gpu):
    from ddpm_deploy.runtime.trt_backend import TrtDenoiser

    _, install = fake_gpu
    with pytest.raises(
        UserError, match="is not a TensorRT engine this TensorRT can load.*Failed to deserialize"
    ):
        TrtDenoiser(install(engine=b"engi"))


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
    io = engine_io(trt.Engine(), trt)
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
