"""The domain classifier on ONNX Runtime: penultimate features and class probabilities, torch-free."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ddpm_deploy.card import canonical_dataset
from ddpm_deploy.datasets import to_model_space
from ddpm_deploy.errors import UserError
from ddpm_deploy.images import to_uint8
from ddpm_deploy.onnx_model import open_session
from ddpm_deploy.shipped import packaged

CLASSIFIER_FORMAT = "ddpm-deploy-classifier/1"
CLASSIFIER_KEY = "ddpm_deploy.classifier"
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
    """features(x) and probabilities(x) for images in model space, float32 [N, 1, 28, 28]."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"no classifier file at {self.path}; pass an existing --classifier")
        self.session = open_session(self.path, RETRAIN)
        meta = self.session.get_modelmeta().custom_metadata_map
        outputs = [o.name for o in self.session.get_outputs()]
        if CLASSIFIER_KEY not in meta or outputs != ["features", "logits"]:
            raise UserError(
                f"{self.path} is not a ddpm-deploy classifier (no {CLASSIFIER_KEY!r} metadata or "
                f"outputs {outputs}, expected ['features', 'logits']); {RETRAIN}"
            )
        self.card = json.loads(meta[CLASSIFIER_KEY])
        if self.card.get("format") != CLASSIFIER_FORMAT:
            raise UserError(
                f"{self.path} has classifier format {self.card.get('format')!r}, expected "
                f"{CLASSIFIER_FORMAT!r}; {RETRAIN}"
            )

    @property
    def dataset(self) -> str:
        return self.card["dataset"]

    @property
    def feature_dim(self) -> int:
        return int(self.card["feature_dim"])

    def __call__(self, x: np.ndarray, batch: int = 1000) -> tuple[np.ndarray, np.ndarray]:
        """(features float64 [N, D], class probabilities float64 [N, K]) of model-space images."""
        feats, probs = [], []
        for i in range(0, len(x), batch):
            f, logits = self.session.run(None, {"x": np.ascontiguousarray(x[i : i + batch])})
            logits = logits.astype(np.float64)
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            feats.append(f.astype(np.float64))
            probs.append(e / e.sum(axis=1, keepdims=True))
        return np.concatenate(feats), np.concatenate(probs)


def as_viewed(x: np.ndarray) -> np.ndarray:
    """Samples as a user sees them: quantised to 8-bit pixels (like samples.png), back in model space.

    The test split is 8-bit too, so both sides of the FD are compared on equal terms.
    """
    return to_model_space(to_uint8(x)[:, 0])
