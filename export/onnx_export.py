"""Checkpoint -> self-describing ONNX file, checked by onnx.checker, ONNX Runtime and a parity test.

The file is built under a temporary name and renamed into place only after every check passed,
so a broken model never leaves the exporter.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ddpm_deploy.export.parity import FP32_ATOL, ParityCase, compare, ort_callable, torch_callable

from ddpm_deploy import __version__
from ddpm_deploy.card import CARD_KEY, dumps
from ddpm_deploy.errors import UserError
from ddpm_deploy.files import atomic_path, check_writable, onnx_output

OPSET = 18  # >= 17 so each LayerNorm is one LayerNormalization op (TensorRT keeps it in fp32)
MAX_BATCH = 4096


def metadata(card: dict) -> dict[str, str]:
    """metadata_props: the whole card for the runtime, plus flat keys for people reading the graph."""
    training = card.get("training", {})
    return {
        CARD_KEY: dumps(card),
        "ddpm_deploy.schedule": json.dumps(card["schedule"], sort_keys=True),
        "ddpm_deploy.image_shape": json.dumps(card["image"]["shape"]),
        # optional in the card (card_schema.py): the defaults every model is built with
        "ddpm_deploy.value_range": json.dumps(card["image"].get("range", [-1.0, 1.0])),
        "ddpm_deploy.dataset": card["dataset"],
        "ddpm_deploy.embedding": card["arch"].get("embedding", "sinusoidal-standard"),
        "ddpm_deploy.weights": card.get("weights", "model"),
        "ddpm_deploy.arch": json.dumps(card["arch"], sort_keys=True),
        "ddpm_deploy.classes": json.dumps(card.get("classes", [])),
        "ddpm_deploy.training": json.dumps(
            {k: training.get(k) for k in ("epochs_done", "final_loss", "seed", "git_revision")}
        ),
        "ddpm_deploy.exporter": f"ddpm-deploy {__version__}",
        "ddpm_deploy.precision": card.get("precision", "fp32"),
        # a distilled model's own sampler (train/distill.py), which every runtime follows
        **({"ddpm_deploy.sampler": json.dumps(card["sampler"])} if card.get("sampler") else {}),
    }


def write_checked_onnx(
    model, example: tuple, path: Path, inputs: list[str], outputs: list[str], props: dict[str, str]
) -> None:
    """Export with a dynamic batch axis on every input, stamp metadata_props, run onnx.checker."""
    import warnings

    import onnx
    import torch

    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on dynamic-axis naming
        program = torch.onnx.export(
            model,
            example,
            input_names=inputs,
            output_names=outputs,
            opset_version=OPSET,
            dynamo=True,
            dynamic_shapes={name: {0: batch} for name in inputs},
            verbose=False,
        )
    program.save(str(path))
    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, props)
    proto.producer_name, proto.producer_version = "ddpm-deploy", __version__
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as e:
        raise UserError(
            f"the exported graph fails onnx.checker: {str(e).splitlines()[0]}"
        ) from None
    onnx.save(proto, str(path))


def export_onnx(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    *,
    verify: bool = True,
    weights: str = "auto",
) -> list[ParityCase]:
    """Export, check and (unless verify=False) prove parity; returns the parity cases."""
    import torch
    from ddpm_deploy.train.checkpoint import load_model

    from ddpm_deploy.card import image_shape, num_classes

    model, card = load_model(checkpoint, weights=weights)
    k, shape = num_classes(card), image_shape(card)
    out = onnx_output(out, checkpoint)
    check_writable(out.parent, "-o")  # made by atomic_path
    with atomic_path(out) as tmp:
        example = (torch.randn(2, *shape), torch.tensor([0, 999], dtype=torch.int64))
        inputs = ["x", "t"]
        if k:  # class-conditional: a third input, labels 0..K-1 and the null label K
            example, inputs = (*example, torch.tensor([0, k], dtype=torch.int64)), [*inputs, "y"]
        write_checked_onnx(model, example, tmp, inputs, ["eps"], metadata(card))
        candidate = ort_callable(tmp)  # loading runs ORT's graph optimisation once
        cases: list[ParityCase] = []
        if verify:
            cases = compare(
                torch_callable(model),
                candidate,
                card["schedule"]["T"],
                atol=FP32_ATOL,
                num_classes=k,
                shape=shape,
            )
            bad = [c for c in cases if not c.ok]
            if bad:
                listed = "; ".join(str(c) for c in bad)
                raise UserError(
                    f"ONNX Runtime disagrees with PyTorch in {len(bad)} case(s): {listed}"
                )
    return cases
