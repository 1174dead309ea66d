"""A model that keeps its weights in a file beside it (ONNX external data) is copied whole (issue 35):
triton-repo and export-web write a model.onnx / sampler.onnx that loads alone, its data merged in,
or refuse in one line when onnx is not there to merge it, leaving nothing behind."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import onnxruntime as ort
import pytest

from ddpm_deploy.shipped import resolve_model
from tests.cli.test_data_loss import fake_ort_web
from tests.helpers import assert_one_line_error, run_cli

onnx = pytest.importorskip("onnx")


def with_external_data(src, folder):
    """``src`` saved as model.onnx + model.onnx.data (every tensor over 1 kB in the data file)."""
    folder.mkdir()
    path = folder / "model.onnx"
    onnx.save(
        onnx.load(str(src)),
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="model.onnx.data",
    )
    assert (folder / "model.onnx.data").stat().st_size > 1_000_000
    return path


def loads_alone(path, tmp_path) -> ort.InferenceSession:
    """The file moved into a folder of its own, so nothing beside the original can help it."""
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copyfile(path, alone / path.name)
    return ort.InferenceSession(str(alone / path.name), providers=["CPUExecutionProvider"])


def eps(session, card_classes: int = 0) -> np.ndarray:
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    feeds = {"x": x, "t": np.array([10, 500], np.int64)}
    if card_classes:
        feeds["y"] = np.array([1, card_classes], np.int64)
    return session.run(None, feeds)[0]


def test_triton_repo_merges_external_data(tmp_path):
    external = with_external_data(resolve_model("mnist"), tmp_path / "ext")
    result = run_cli("triton-repo", external, "-o", tmp_path / "repo")
    assert result.exit_code == 0, result.output
    written = tmp_path / "repo" / "ddpm_denoiser" / "1" / "model.onnx"
    copy = loads_alone(written, tmp_path)
    original = ort.InferenceSession(str(resolve_model("mnist")), providers=["CPUExecutionProvider"])
    k = len(json.loads(original.get_modelmeta().custom_metadata_map["ddpm_deploy.card"])["classes"])
    assert np.array_equal(eps(copy, k), eps(original, k))
    card = copy.get_modelmeta().custom_metadata_map
    assert card == original.get_modelmeta().custom_metadata_map


def test_export_web_merges_a_sampler_files_external_data(tmp_path):
    sampler = tmp_path / "sampler.onnx"
    made = run_cli("export-sampler", "mnist", "--steps", "3", "-o", sampler)
    assert made.exit_code == 0, made.output
    external = with_external_data(sampler, tmp_path / "ext")
    modules = fake_ort_web(tmp_path / "node_modules")
    site = tmp_path / "site"
    result = run_cli("export-web", "--model", external, "-o", site, "--node-modules", modules)
    assert result.exit_code == 0, result.output
    copy = loads_alone(site / "sampler.onnx", tmp_path)
    feeds = {"seed": np.array([3], np.int64), "index": np.arange(2, dtype=np.int64)}
    feeds["y"] = np.array([-1, 4], np.int64)
    want = ort.InferenceSession(str(sampler), providers=["CPUExecutionProvider"]).run(None, feeds)
    assert np.array_equal(copy.run(None, feeds)[1], want[1])  # the same images
    assert not (site / "sampler.onnx.data").exists()


def test_without_onnx_external_data_is_refused_in_one_line(tmp_path, monkeypatch):
    external = with_external_data(resolve_model("mnist"), tmp_path / "ext")
    monkeypatch.setitem(sys.modules, "onnx", None)  # the base install: onnxruntime, no onnx
    result = run_cli("triton-repo", external, "-o", tmp_path / "repo")
    assert_one_line_error(result, "external data", "pip install onnx")
    assert not (tmp_path / "repo").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ext"]  # no staging folder left


def test_a_single_file_model_is_copied_byte_for_byte(tmp_path):
    result = run_cli("triton-repo", "mnist", "-o", tmp_path / "repo")
    assert result.exit_code == 0, result.output
    written = tmp_path / "repo" / "ddpm_denoiser" / "1" / "model.onnx"
    assert written.read_bytes() == resolve_model("mnist").read_bytes()


def test_a_linked_data_file_is_one_line(tmp_path):
    """ONNX Runtime loads a model whose data file is a link (Hugging Face's cache keeps files so);
    onnx refuses to read through it when merging: one line, naming the merge to run."""
    external = with_external_data(resolve_model("mnist"), tmp_path / "ext")
    data = tmp_path / "ext" / "model.onnx.data"
    data.rename(tmp_path / "ext" / "blob")  # inside the model's folder: ONNX Runtime follows it
    data.symlink_to("blob")
    result = run_cli("triton-repo", external, "-o", tmp_path / "repo")
    if result.exit_code == 0:  # an onnx that follows the link merges it: also fine
        loads_alone(tmp_path / "repo" / "ddpm_denoiser" / "1" / "model.onnx", tmp_path)
        return
    assert_one_line_error(result, "could not be merged into one file", "onnx.save(onnx.load(")
    assert not (tmp_path / "repo").exists()
