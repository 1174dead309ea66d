import json

import numpy as np
import onnx
import pytest
from ddpm_deploy.export.onnx_export import OPSET, export_onnx
from ddpm_deploy.export.parity import FP32_ATOL
from ddpm_deploy.runtime import load_denoiser
from ddpm_deploy.train.checkpoint import read_checkpoint_card


def _check_parity(cases):
    assert sorted({c.batch for c in cases}) == [1, 16, 100]
    assert len(cases) == 12
    worst = max(c.max_abs for c in cases)
    assert all(c.ok for c in cases), [str(c) for c in cases]
    assert worst <= FP32_ATOL
    return worst


def test_parity_random_init(random_checkpoint, tmp_path):
    worst = _check_parity(export_onnx(random_checkpoint, tmp_path / "m.onnx"))
    print(f"random init: max |torch - ort| = {worst:.2e}")


@pytest.mark.slow
def test_parity_trained(trained_checkpoint, tmp_path):
    worst = _check_parity(export_onnx(trained_checkpoint, tmp_path / "m.onnx"))
    print(f"trained: max |torch - ort| = {worst:.2e}")


def test_graph_is_self_describing_and_dynamic(random_checkpoint, random_onnx):
    proto = onnx.load(str(random_onnx))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == OPSET >= 17
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("LayerNormalization") == 20  # one op per LayerNorm, none decomposed
    assert "Gather" not in ops  # the timestep embedding is computed, not looked up
    props = {p.key: p.value for p in proto.metadata_props}
    card = json.loads(props["ddpm_deploy.card"])
    assert card == read_checkpoint_card(random_checkpoint)
    assert json.loads(props["ddpm_deploy.schedule"]) == card["schedule"]
    assert props["ddpm_deploy.dataset"] == "fashion_mnist"
    assert props["ddpm_deploy.embedding"] == "sinusoidal-standard"
    assert json.loads(props["ddpm_deploy.image_shape"]) == [1, 28, 28]
    assert json.loads(props["ddpm_deploy.value_range"]) == [-1.0, 1.0]
    assert props["ddpm_deploy.exporter"].startswith("ddpm-deploy ")
    x_dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert x_dims[0].dim_param and [d.dim_value for d in x_dims[1:]] == [1, 28, 28]


def test_runtime_rebuilds_schedule_from_file(random_checkpoint, random_onnx):
    den = load_denoiser("ort", random_onnx)
    assert den.schedule.to_dict() == read_checkpoint_card(random_checkpoint)["schedule"]
    for batch in (1, 16, 100):  # a graph traced with a constant batch would fail here
        out = den(np.zeros((batch, 1, 28, 28), np.float32), np.zeros(batch, np.int64))
        assert out.shape == (batch, 1, 28, 28) and out.dtype == np.float32


def test_the_card_names_the_weights_actually_loaded(trained_checkpoint):
    import torch
    from ddpm_deploy.export.onnx_export import metadata
    from ddpm_deploy.train.checkpoint import load_model

    ema, ema_card = load_model(trained_checkpoint)  # the shipped card chooses EMA
    raw, raw_card = load_model(trained_checkpoint, weights="model")
    assert (ema_card["weights"], raw_card["weights"]) == ("ema", "model")
    assert metadata(raw_card)["ddpm_deploy.weights"] == "model"
    assert not torch.equal(ema.conv_out.weight, raw.conv_out.weight)
