"""The TensorRT engine cache, sidecars and the trt backend's error paths, without a GPU.

The trt backend is driven here with a stand-in `tensorrt` module whose Runtime behaves as the real
one does on bad bytes (deserialize_cuda_engine returns None); real engines are covered by tests/gpu.
"""

import json
import sys
import types
from dataclasses import replace

import pytest
from ddpm_deploy.hardware.engine_cache import (
    BatchProfile,
    EngineKey,
    check_sidecar,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)

from ddpm_deploy.errors import UserError
from tests.helpers import assert_one_line_error, run_cli

KEY = EngineKey("ab" * 32, "10.3.0", "Orin", "8.7", "fp16", BatchProfile(1, 16, 100))
CARD = {"format": "ddpm-deploy/1", "schedule": {"name": "linear", "T": 1000}}


def test_key_changes_with_every_field():
    variants = [
        replace(KEY, onnx_sha256="cd" * 32),
        replace(KEY, tensorrt="10.4.0"),
        replace(KEY, gpu="NVIDIA H100"),
        replace(KEY, compute_capability="9.0"),
        replace(KEY, precision="fp32"),
        replace(KEY, profile=BatchProfile(1, 16, 256)),
    ]
    digests = {KEY.digest(), *(v.digest() for v in variants)}
    assert len(digests) == 7
    assert KEY.digest() == replace(KEY).digest()  # stable for equal keys
    assert KEY.filename("model") == f"model.fp16.{KEY.digest()}.engine"


def test_sidecar_round_trip(tmp_path):
    engine = tmp_path / KEY.filename("model")
    write_sidecar(engine, KEY, CARD, 12.34)
    record = read_sidecar(engine)
    assert record["key"]["profile"] == KEY.profile and record["card"] == CARD
    assert record["digest"] == KEY.digest() and record["build_seconds"] == 12.3
    check_sidecar(engine, record, "10.3.0", "Orin", "8.7")  # the same machine: no error


@pytest.mark.parametrize(
    "trt,gpu,cc,fragment",
    [
        ("10.4.0", "Orin", "8.7", "TensorRT 10.3.0 (this machine has 10.4.0)"),
        ("10.3.0", "NVIDIA H100", "9.0", "GPU Orin sm_8.7 (this machine has NVIDIA H100 sm_9.0)"),
    ],
)
def test_mismatched_sidecar_says_how_to_rebuild(tmp_path, trt, gpu, cc, fragment):
    engine = tmp_path / "m.engine"
    write_sidecar(engine, KEY, CARD, 1.0)
    with pytest.raises(UserError, match="engines are not portable") as err:
        check_sidecar(engine, read_sidecar(engine), trt, gpu, cc)
    assert fragment in str(err.value) and "--rebuild" in str(err.value)


def test_missing_or_corrupt_sidecar(tmp_path):
    engine = tmp_path / "m.engine"
    with pytest.raises(UserError, match="has no sidecar m.json"):
        read_sidecar(engine)
    sidecar_path(engine).write_text("{not json")
    with pytest.raises(UserError, match="is not an engine sidecar"):
        read_sidecar(engine)


def test_profile_arguments():
    assert BatchProfile(1, 16, 100).shapes("x", (1, 28, 28)) == (
        (1, 1, 28, 28),
        (16, 1, 28, 28),
        (100, 1, 28, 28),
    )
    # the image axes are the card's (C, H, W)
    assert BatchProfile(1, 2, 4).shapes("x", (3, 32, 32)) == (
        (1, 3, 32, 32),
        (2, 3, 32, 32),
        (4, 3, 32, 32),
    )
    assert BatchProfile(2, 4, 8).shapes("t", (3, 32, 32)) == ((2,), (4,), (8,))
    with pytest.raises(UserError, match="1 <= min <= opt <= max"):
        BatchProfile(4, 2, 8)
    with pytest.raises(
        UserError, match=r"batch 256 is outside .*max 100.*--max-batch 256 --rebuild"
    ):
        BatchProfile(1, 16, 100).check(256)


def test_build_engine_profile_checked_first(tmp_path):
    result = run_cli("build-engine", tmp_path / "m.onnx", "--min-batch", "8", "--max-batch", "4")
    assert_one_line_error(result, "1 <= min <= opt <= max")


def test_fp16_without_tensorrt_says_what_to_install(random_checkpoint, tmp_path):
    out = tmp_path / "m.onnx"
    result = run_cli("export", random_checkpoint, "-o", out, "--fp16")
    assert_one_line_error(
        result, "building an engine needs tensorrt", "pip install 'ddpm-deploy[trt-cu12]'"
    )
    assert not out.exists()  # refused before any work


def test_trt_backend_without_tensorrt(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\x00" * 64)
    result = run_cli("sample", "--backend", "trt", "--model", engine, "--out", tmp_path / "out")
    assert_one_line_error(result, "the trt backend needs TensorRT and Polygraphy")
    assert not (tmp_path / "out").exists()


def test_trt_backend_given_onnx(random_onnx, tmp_path):
    result = run_cli("sample", "--backend", "trt", "--model", random_onnx, "--out", tmp_path / "o")
    assert_one_line_error(result, "runs a TensorRT engine", "ddpm-deploy build-engine")


@pytest.fixture
def fake_trt(monkeypatch):
    """A stand-in tensorrt, and a Polygraphy loader that rejects bad bytes as TensorRT's runtime
    does (deserialize_cuda_engine returns None)."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.3.0"
    polygraphy = types.ModuleType("polygraphy.backend.trt")
    polygraphy.EngineFromBytes = lambda data: lambda: None
    polygraphy.TrtRunner = None
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "polygraphy.backend.trt", polygraphy)
    from ddpm_deploy.hardware import gpu
    from ddpm_deploy.runtime import trt_backend

    monkeypatch.setattr(trt_backend, "has_module", lambda name: True)
    monkeypatch.setattr(trt_backend, "current_gpu", lambda: gpu.GpuInfo("Orin", "8.7"))
    return trt


def test_truncated_engine_is_rejected(fake_trt, tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"ftrt" + b"\x00" * 10)
    write_sidecar(engine, replace(KEY, tensorrt="10.3.0"), CARD, 1.0)
    result = run_cli("sample", "--backend", "trt", "--model", engine, "--out", tmp_path / "out")
    assert_one_line_error(result, "is not a TensorRT engine, or is truncated", "--rebuild")


def test_engine_of_another_gpu_is_rejected(fake_trt, tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"whatever")
    write_sidecar(engine, replace(KEY, gpu="NVIDIA A100", compute_capability="8.0"), CARD, 1.0)
    result = run_cli("sample", "--backend", "trt", "--model", engine, "--out", tmp_path / "out")
    assert_one_line_error(result, "built for GPU NVIDIA A100 sm_8.0 (this machine has Orin sm_8.7)")


def test_doctor_reports_this_machine():
    result = run_cli("doctor", "--json")
    assert result.exit_code == 0
    info = json.loads(result.output)
    assert info["onnxruntime"]["providers"]["CPUExecutionProvider"] == "loads"
    assert info["backends"]["ort"] == "ready"
    assert info["tensorrt"] is None and info["backends"]["trt"].startswith("needs")
    assert info["backends"]["triton"] == "ready (with --url)"  # tritonclient is in the dev install
    assert info["serve"].startswith(("ready", "no: "))  # "no: <why>" without a shared libpython
    text = run_cli("doctor")
    assert text.exit_code == 0 and "CPUExecutionProvider: loads" in text.output
