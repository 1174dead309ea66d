"""Serving without a server: request rows, per-request errors, the repositories' configs, bad input.

The real Triton server is exercised in tests/serve/test_serve_triton.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from tests.helpers import assert_one_line_error, run_cli


def rows(seed, indices, **columns):
    """A ddpm_sample request as the Python backend sees it: one [N, 1] array per input."""
    n = len(indices)
    out = {
        "seed": np.full((n, 1), seed, np.int64),
        "index": np.array(indices, np.int64).reshape(-1, 1),
    }
    for name, value in columns.items():
        dtype = object if isinstance(value, bytes) else type(value)
        out[name] = np.full((n, 1), value, dtype)
    return out


@pytest.fixture(scope="module")
def cond_denoiser(random_cond_onnx):
    from ddpm_deploy.runtime.backends import load_denoiser

    return load_denoiser("ort", random_cond_onnx)


def local_images(model, tmp_path, name, *args):
    result = run_cli("sample", "--model", model, "--save", "npz", "--frames", "2",
                     "--out", tmp_path / name, *args)  # fmt: skip
    assert result.exit_code == 0, result.output
    return np.load(tmp_path / name / "samples.npz")["images"]


def test_merged_requests_equal_local_sample_and_a_bad_one_fails_alone(
    cond_denoiser, random_cond_onnx, tmp_path
):
    from ddpm_deploy.serve.rows import SampleService

    service = SampleService(cond_denoiser)
    steps = {"steps": np.int32(5)}
    requests = [
        rows(0, [0, 1, 2, 3], **steps),  # random classes at the default guidance
        rows(0, [7, 2], **{"class": np.int64(3), "guidance": np.float32(1.0)}, **steps),
        rows(0, [0], **{"class": np.int64(12)}),  # out of range: this request alone fails
        rows(1, [5], **{"class": np.int64(10)}, **steps),  # the null label
        rows(0, [4], sampler=b"ddim", **steps),
    ]
    results = service.run(requests)
    assert "class 12 is out of range" in str(results[2])
    random = local_images(random_cond_onnx, tmp_path, "r", "-n", "8", "--steps", "5")
    cls3 = local_images(random_cond_onnx, tmp_path, "c", "-n", "8", "--steps", "5",
                        "--class", "3", "--guidance", "1")  # fmt: skip
    null = local_images(random_cond_onnx, tmp_path, "n", "-n", "6", "--steps", "5",
                        "--class", "none", "--seed", "1")  # fmt: skip
    ddim = local_images(random_cond_onnx, tmp_path, "d", "-n", "5", "--steps", "5",
                        "--sampler", "ddim")  # fmt: skip
    np.testing.assert_array_equal(results[0]["image"][:, 0], random[:4])
    np.testing.assert_array_equal(results[1]["image"][:, 0], cls3[[7, 2]])
    np.testing.assert_array_equal(results[3]["image"][:, 0], null[[5]])
    np.testing.assert_array_equal(results[4]["image"][:, 0], ddim[[4]])
    assert results[0]["sample"].dtype == np.float32


@pytest.mark.parametrize(
    "request_rows,fragment",
    [
        ({"seed": np.zeros((1, 1), np.int64)}, "missing input(s) ['index']"),
        (rows(-1, [0]), "seed and index must be >= 0"),
        (rows(0, [0], **{"class": np.int64(-2)}), "class -2 is out of range"),
        (rows(0, [0], steps=np.int32(0)), "--steps must be positive"),
        (rows(0, [0], steps=np.int32(1001)), "--steps must be at most T=1000"),
        (rows(0, [0], sampler=b"euler"), "unknown sampler 'euler'"),
        (rows(0, [0], guidance=np.float32("nan")), "--guidance must be a finite number"),
    ],
)
def test_each_bad_row_is_one_line(cond_denoiser, request_rows, fragment):
    from ddpm_deploy.serve.rows import SampleService

    (error,) = SampleService(cond_denoiser).run([request_rows])
    assert isinstance(error, Exception) and fragment in str(error)
    assert "\n" not in str(error)


def test_unconditional_model_refuses_a_class(random_onnx):
    from ddpm_deploy.runtime.backends import load_denoiser
    from ddpm_deploy.serve.rows import SampleService

    (error,) = SampleService(load_denoiser("ort", random_onnx)).run([rows(0, [0], **{"class": np.int64(1)})])  # fmt: skip
    assert "this model is unconditional" in str(error)


def test_denoiser_service_merges_requests_into_one_call(cond_denoiser):
    from ddpm_deploy.serve.rows import DenoiserService

    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 1, 28, 28)).astype(np.float32)
    t = np.array([[10], [500], [999], [0], [3]], np.int64)
    y = np.array([[1], [10], [4]], np.int64)
    calls = []
    service = DenoiserService(cond_denoiser)
    inner = service.denoiser
    service.denoiser = lambda *a: calls.append(len(a[0])) or inner(*a)
    results = service.run([
        {"x": x[:3], "t": t[:3], "y": y},
        {"x": x[3:], "t": np.array([[1000], [3]])},  # t out of range: this one alone fails
        {"x": x[3:], "t": t[3:]},  # no y: the null label
    ])  # fmt: skip
    assert calls == [5]
    assert "t must be in 0..999" in str(results[1])
    np.testing.assert_array_equal(results[0]["eps"], inner(x[:3], t[:3, 0], y[:, 0]))
    np.testing.assert_array_equal(results[2]["eps"], inner(x[3:], t[3:, 0], np.full(2, 10)))
    bad = service.run([{"x": x[:1], "t": t[:1], "y": np.array([[11]])}, {"x": x[:1] * np.nan, "t": t[:1]}])  # fmt: skip
    assert "y must be in 0..10" in str(bad[0]) and "NaN" in str(bad[1])


def parse(path):
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def test_serve_repository_configs_parse_as_triton_model_configs(cond_denoiser, tmp_path):
    from ddpm_deploy.serve.repository import write_serve_repository

    write_serve_repository(tmp_path, cond_denoiser.card, "/m.onnx", "ort", {}, 32, 700)
    sample = parse(tmp_path / "ddpm_sample" / "config.pbtxt")
    assert sample.backend == "python" and sample.max_batch_size == 32
    assert sample.dynamic_batching.max_queue_delay_microseconds == 700
    inputs = {i.name: i for i in sample.input}
    assert not inputs["seed"].optional and inputs["class"].optional
    assert inputs["sampler"].data_type == model_config_pb2.TYPE_STRING
    assert [o.name for o in sample.output] == ["image", "sample"]
    assert sample.output[0].data_type == model_config_pb2.TYPE_UINT8
    assert json.loads(sample.parameters["ddpm_deploy.card"].string_value) == cond_denoiser.card
    den = parse(tmp_path / "ddpm_denoiser" / "config.pbtxt")
    assert [i.name for i in den.input] == ["x", "t", "y"] and list(den.input[0].dims) == [1, 28, 28]
    assert den.parameters["service"].string_value == "denoiser"
    assert (
        (tmp_path / "ddpm_denoiser" / "1" / "model.py").read_text().startswith("from ddpm_deploy")
    )


def test_triton_repo_writes_onnx_and_tensorrt_models_that_parse(random_cond_onnx, tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"not really an engine: the config is what is tested")
    out = tmp_path / "repo"
    result = run_cli("triton-repo", random_cond_onnx, "-o", out, "--engine", engine,
                     "--max-batch", "128", "--instances", "2", "--trt-accelerator")  # fmt: skip
    assert result.exit_code == 0, result.output
    onnx = parse(out / "ddpm_denoiser" / "config.pbtxt")
    assert onnx.platform == "onnxruntime_onnx" and onnx.max_batch_size == 128
    assert onnx.instance_group[0].count == 2
    assert onnx.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    t = {i.name: i for i in onnx.input}["t"]
    assert list(t.dims) == [1] and list(t.reshape.shape) == []  # the ONNX file's t is int64[N]
    (accel,) = onnx.optimization.execution_accelerators.gpu_execution_accelerator
    assert accel.name == "tensorrt" and accel.parameters["precision_mode"] == "FP16"
    assert (
        out / "ddpm_denoiser" / "1" / "model.onnx"
    ).read_bytes() == random_cond_onnx.read_bytes()
    plan = parse(out / "ddpm_denoiser_trt" / "config.pbtxt")
    assert (
        plan.platform == "tensorrt_plan"
        and (out / "ddpm_denoiser_trt" / "1" / "model.plan").exists()
    )
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--engine", "missing.engine"], "no engine file at missing.engine"),
        (["--kind", "cpu", "--trt-accelerator"], "--trt-accelerator runs on GPU instances"),
        (["--max-batch", "0"], "--max-batch and --instances must be >= 1"),
    ],
)
def test_triton_repo_bad_input(random_onnx, tmp_path, args, fragment):
    out = tmp_path / "repo"
    assert_one_line_error(run_cli("triton-repo", random_onnx, "-o", out, *args), fragment)
    assert not out.exists()


def test_triton_repo_refuses_a_full_folder_and_a_model_without_card(random_onnx, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    result = run_cli("triton-repo", random_onnx, "-o", tmp_path / "full")
    assert_one_line_error(result, "already exists and is not an empty folder")
    import onnx

    bare = onnx.load(random_onnx)
    del bare.metadata_props[:]
    onnx.save(bare, tmp_path / "bare.onnx")
    assert_one_line_error(
        run_cli("triton-repo", tmp_path / "bare.onnx", "-o", tmp_path / "r"), "lacks"
    )


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--http-port", "8001"], "must differ"),
        (["--max-images", "0"], "--max-images must be 1..4096"),
        (["--batch", "0"], "--batch must be 1..4096"),
        (["--http-port", "70000"], "'--http-port': 70000 is not in the range x<=65535"),
        (
            ["--backend", "ort", "--precision", "bf16"],
            "--precision bf16 applies to --backend openvino",
        ),
    ],
)
def test_serve_bad_input(args, fragment):
    assert_one_line_error(run_cli("serve", *args), fragment)


def test_serve_without_triton_or_shared_libpython_says_so(monkeypatch):
    import importlib.util
    import sysconfig

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "pytriton" else real(n, *a)
    )
    assert_one_line_error(run_cli("serve"), "pip install 'ddpm-deploy[serve]'")
    monkeypatch.setattr(importlib.util, "find_spec", real)
    vars_ = dict(sysconfig.get_config_vars(), Py_ENABLE_SHARED=0)
    monkeypatch.setattr(sysconfig, "get_config_var", vars_.get)
    assert_one_line_error(run_cli("serve"), "has no shared libpython", "--enable-shared")


def test_sample_triton_backend_needs_a_live_url(tmp_path):
    import socket

    assert_one_line_error(run_cli("sample", "--backend", "triton", "--out", tmp_path), "--url")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    result = run_cli(
        "sample", "--backend", "triton", "--url", f"127.0.0.1:{port}", "--out", tmp_path
    )
    assert_one_line_error(result, f"no Triton server answers at 127.0.0.1:{port}")
    assert not list(tmp_path.iterdir())


def test_a_merged_group_runs_in_chunks_of_batch_with_the_same_images(cond_denoiser):
    from ddpm_deploy.serve import rows as rows_module
    from ddpm_deploy.serve.rows import SampleService

    requests = [rows(0, [0, 1, 2], steps=np.int32(3)), rows(0, [3, 4], steps=np.int32(3))]
    whole = SampleService(cond_denoiser, batch=16).run(requests)
    sizes = []
    real = rows_module.sample
    rows_module.sample = lambda den, sched, n, *a, **k: (
        sizes.append(n) or real(den, sched, n, *a, **k)
    )
    try:
        chunked = SampleService(cond_denoiser, batch=2).run(requests)
    finally:
        rows_module.sample = real
    assert sizes == [2, 2, 1]
    for a, b in zip(whole, chunked, strict=True):
        np.testing.assert_array_equal(a["image"], b["image"])


def test_triton_backend_without_tritonclient_names_the_package(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "tritonclient.http", None)
    result = run_cli("sample", "--backend", "triton", "--url", "127.0.0.1:1", "--out", tmp_path)
    assert_one_line_error(result, "pip install 'tritonclient[http]'")
