"""The domain classifier on ONNX Runtime: penultimate features and class probabilities, torch-free."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ddpm_deploy.card import (
    CLASSIFIER_KEY,
    MNIST_SHAPE,
    canonical_dataset,
    parse_classifier_card,
)
from ddpm_deploy.datasets import to_model_space
from ddpm_deploy.errors import UserError
from ddpm_deploy.files import regular_input
from ddpm_deploy.images import to_uint8
from ddpm_deploy.onnx_model import open_session
from ddpm_deploy.shipped import packaged

RETRAIN = "train one with `ddpm-deploy train-classifier --dataset NAME -o FILE.onnx`"


def shipped_classifier(dataset: str) -> Path:
    name = canonical_dataset(dataset)
    path = packaged(f"{name}_classifier.onnx")
    if not path.is_file():
        raise UserError(
            f"this install ships no {name} classifier; pass --classifier FILE ({RETRAIN})"
        )
    return path


class Classifier:
    """features(x) and probabilities(x) for images in model space, float32 [N, *input_shape]
    (1 x 28 x 28: the classifiers are trained on the IDX datasets, Fashion-MNIST and MNIST)."""

    def __init__(self, path: str | Path):
        self.path = regular_input(path, "--classifier")  # a FIFO or a device, in those words
        if not self.path.is_file():
            what = "is a folder" if self.path.is_dir() else "does not exist"
            raise UserError(f"--classifier {self.path} {what}; pass a classifier .onnx file")
        self.session = open_session(self.path, RETRAIN)
        meta = self.session.get_modelmeta().custom_metadata_map
        outputs = [o.name for o in self.session.get_outputs()]
        if CLASSIFIER_KEY not in meta or outputs != ["features", "logits"]:
            raise UserError(
                f"{self.path} is not a ddpm-deploy classifier (no {CLASSIFIER_KEY!r} metadata or "
                f"outputs {outputs}, expected ['features', 'logits']); {RETRAIN}"
            )
        self.card = parse_classifier_card(meta[CLASSIFIER_KEY], str(self.path), RETRAIN)
        self.widths = (self.feature_dim, len(self.card["classes"]))
        declared = (
            [(i.name, i.shape[1:]) for i in self.session.get_inputs()],
            [o.shape[1:] for o in self.session.get_outputs()],
        )
        if declared != ([("x", list(self.input_shape))], [[w] for w in self.widths]):
            raise UserError(
                f"{self.path}'s graph (inputs {declared[0]}, outputs {declared[1]} per image) "
                f"differs from its card (x {list(self.input_shape)} in, {list(self.widths)} out); "
                f"{RETRAIN}"
            )

    @property
    def dataset(self) -> str:
        return self.card["dataset"]

    @property
    def feature_dim(self) -> int:
        return int(self.card["feature_dim"])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = (int(v) for v in self.card.get("input", {}).get("shape", MNIST_SHAPE))
        return (c, h, w)

    def check_images(self, shape: tuple[int, ...], source: str) -> None:
        """One line if ``source``'s images (C, H, W) are not the ones this classifier reads."""
        if tuple(shape) != self.input_shape:
            got, want = ("x".join(map(str, s)) for s in (shape, self.input_shape))
            raise UserError(
                f"{source} makes {got} images, but classifier {self.path} reads {want} "
                f"({self.dataset}) images: the domain classifier cannot judge this model"
            )

    def __call__(self, x: np.ndarray, batch: int = 1000) -> tuple[np.ndarray, np.ndarray]:
        """(features float64 [N, D], class probabilities float64 [N, K]) of model-space images."""
        feats, probs = [], []
        for i in range(0, len(x), batch):
            f, logits = self.session.run(None, {"x": np.ascontiguousarray(x[i : i + batch])})
            if (f.shape[1:], logits.shape[1:]) != tuple((w,) for w in self.widths):
                raise UserError(  # a graph whose declared shapes are not the ones it computes
                    f"{self.path} computed {f.shape[1:]} features and {logits.shape[1:]} logits "
                    f"per image; its card says {self.widths}; {RETRAIN}"
                )
            logits = logits.astype(np.float64)
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            feats.append(f.astype(np.float64))
            probs.append(e / e.sum(axis=1, keepdims=True))
        return np.concatenate(feats), np.concatenate(probs)


def as_viewed(x: np.ndarray) -> np.ndarray:
    """Samples as a user sees them: quantised to 8-bit pixels (like samples.png), back in model space.

    The test split is 8-bit too, so both sides of the FD are compared on equal terms.
    """
    return to_model_space(to_uint8(x))
