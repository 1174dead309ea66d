"""Trained classifier -> ONNX file with (features, logits) outputs and its card, parity-checked."""

from __future__ import annotations

import os

import numpy as np
from ddpm_deploy.export.onnx_export import write_checked_onnx

from ddpm_deploy.card import CLASSIFIER_KEY, dumps
from ddpm_deploy.errors import UserError
from ddpm_deploy.files import atomic_path, check_writable, onnx_output
from ddpm_deploy.onnx_model import open_session

# |torch - ORT| bound on features and logits (values of order 1-30): ORT folds BatchNorm into the
# convolutions, so the sums run in another order. Measured: below 2e-5 on both shipped classifiers.
ATOL = 1e-4


def train_and_export(cfg, out: str | os.PathLike) -> tuple[dict, dict]:
    """`ddpm-deploy train-classifier`: train on ``cfg`` (a ClassifierConfig), then write ``out``
    parity-checked on the first 1000 test images. Returns the card and the parity figures."""
    from ddpm_deploy.train.classifier import train_classifier

    from ddpm_deploy.datasets import load_split, to_model_space

    check_writable(onnx_output(out).parent, "-o")  # before any training; made at the end
    model, card = train_classifier(cfg)
    test = to_model_space(load_split(cfg.dataset, cfg.data_root, train=False).images[:1000])
    return card, export_classifier(model, card, out, test)


def export_classifier(model, card: dict, out: str | os.PathLike, images: np.ndarray) -> dict:
    """Write ``out``; ``images`` (model space) are the parity inputs. Returns the parity figures."""
    import torch

    out = onnx_output(out)
    check_writable(out.parent, "-o")  # made by atomic_path
    model = model.eval()
    with atomic_path(out) as tmp:
        props = {CLASSIFIER_KEY: dumps(card), "ddpm_deploy.dataset": card["dataset"]}
        example = (torch.from_numpy(images[:2]),)
        write_checked_onnx(model, example, tmp, ["x"], ["features", "logits"], props)
        with torch.inference_mode():
            f_ref, l_ref = (t.numpy() for t in model(torch.from_numpy(images)))
        f_ort, l_ort = open_session(tmp).run(None, {"x": images})
        parity = {
            "images": len(images),
            "features_max_abs": float(np.abs(f_ref - f_ort).max()),
            "logits_max_abs": float(np.abs(l_ref - l_ort).max()),
            "argmax_agreement": float(np.mean(l_ref.argmax(1) == l_ort.argmax(1))),
            "atol": ATOL,
        }
        if max(parity["features_max_abs"], parity["logits_max_abs"]) > ATOL:
            raise UserError(f"ONNX Runtime disagrees with PyTorch on the classifier: {parity}")
    return parity
