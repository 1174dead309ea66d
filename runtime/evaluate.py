"""`ddpm-deploy evaluate`: sample quality, by several judges whose real-vs-real floors are printed.

Reports, for n generated images: the Frechet distance (FD) of a domain classifier's penultimate
features to the test split's, the same FD for 10,000 real training images (the floor a perfect
model would reach at that n), the predicted-class histogram and its largest deviation from uniform,
the mean classifier confidence, the share of raw sample values outside [-1, 1]; and the judges of
runtime/judges.py: a classifier two-sample test (raw and with a background floor), precision and
recall, and an FD in pixel PCA space (docs/QUALITY.md says which number decides what).
"""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass

import numpy as np
from ddpm_deploy.runtime.backends import ModelChoice
from ddpm_deploy.runtime.classifier import Classifier, as_viewed, shipped_classifier
from ddpm_deploy.runtime.frechet import frechet_distance, gaussian_stats, min_n_message
from ddpm_deploy.runtime.generate import generate_chunks
from ddpm_deploy.runtime.guidance import (
    ALL,
    NONE,
    RANDOM,
    ClassChoice,
    check_guidance,
    guidance_for,
    parse_class,
    random_labels,
)
from ddpm_deploy.runtime.judges import judge, judge_lines
from ddpm_deploy.runtime.real_images import PixelFeatures, RealImages, real_images
from ddpm_deploy.runtime.sampler_settings import SamplerSettings, steps_run

from ddpm_deploy import __version__
from ddpm_deploy.card import DATASETS, canonical_dataset, num_classes
from ddpm_deploy.datasets import to_model_space
from ddpm_deploy.errors import UserError
from ddpm_deploy.files import sha256_file
from ddpm_deploy.images import to_uint8

REAL_N = 10_000  # training images in the real-data floor, matched to the QUALITY.md sample count
PIXEL_FEATURES = 64  # pixel PCA components standing in for classifier features (folder datasets)


@dataclass
class EvalRequest(SamplerSettings, ModelChoice, ClassChoice):
    # class_: "all" (image i asks for class i mod K; per-class accuracy reported), "random" (the
    # default of a conditional model, as in `sample`), "none" (the null label); a single class is
    # refused: the judges compare against every class
    n: int = 10_000
    batch: int = 1000
    seed: int = 0
    dataset: str | None = None  # None: the model card's; another one is refused
    classifier: str | None = None  # None: the one shipped for the dataset
    data_root: str | None = None
    two_sample: bool = True  # the classifier two-sample test (needs torch); precision/recall always
    progress: bool = True

    def validate(self) -> None:
        self.check(self.n)
        if self.batch <= 0:
            raise UserError(f"--batch must be positive, got {self.batch}")
        check_guidance(self.guidance)
        if self.class_ is not None and self.class_.lower() not in (ALL, RANDOM, NONE):
            raise UserError(
                f"--class {self.class_}: evaluate compares the samples with every class of the "
                "data; choose all (balanced), random or none (the null label)"
            )
        self.check_choice()


def class_report(probs: np.ndarray, classes: list[str]) -> dict:
    counts = np.bincount(probs.argmax(axis=1), minlength=len(classes))
    shares = counts / counts.sum()
    return {
        "class_counts": {c: int(k) for c, k in zip(classes, counts, strict=True)},
        "max_class_deviation": float(np.abs(shares - 1.0 / len(classes)).max()),
        "mean_confidence": float(probs.max(axis=1).mean()),
    }


def asked_labels(req: EvalRequest, card: dict) -> np.ndarray | None:
    """--class all: image i asks for class i mod K (balanced); random (the default for a
    conditional model, as in `sample`): a uniformly random class per image; none or an
    unconditional model: None (checked by parse_class: one line for a class the model lacks)."""
    choice, k = parse_class(card, req.class_), num_classes(card)
    if choice == ALL:
        return np.arange(req.n, dtype=np.int64) % k
    if choice == RANDOM:
        return random_labels(k, req.seed, 0, req.n)
    return None


def conditional_report(probs: np.ndarray, asked: np.ndarray, classes: list[str]) -> dict:
    """Per class: the share of images asked for it that the classifier assigns to it."""
    hit = probs.argmax(axis=1) == asked
    per_class = {c: float(hit[asked == i].mean()) for i, c in enumerate(classes)}
    return {"class_accuracy": float(hit.mean()), "per_class_accuracy": per_class}


def generate(denoiser, req: EvalRequest) -> tuple[np.ndarray, float]:
    """n samples in chunks of --batch; image i depends only on (seed, i), whatever the chunking."""
    req = req.for_model(denoiser.card)  # a distilled model's own sampler, or the defaults
    req.guidance = guidance_for(denoiser.card, req.guidance)
    labels = asked_labels(req, denoiser.card)
    steps = steps_run(req.steps, denoiser.schedule.T)
    t0 = time.perf_counter()
    chunks = generate_chunks(
        denoiser,
        req,
        req.n,
        seed=req.seed,
        labels=labels,
        guidance=req.guidance,
        batch=req.batch,
        desc=f"generating {req.n} images ({req.sampler}, {steps} steps)",
        progress=req.progress,
    )
    x = np.concatenate([x for _, x in chunks])
    return x, time.perf_counter() - t0


def _load(req: EvalRequest):
    """Model and classifier, checked against each other before any image is generated."""
    denoiser = req.open()
    dataset = denoiser.card["dataset"]
    if dataset not in DATASETS.values():  # e.g. 'diffusers': imported without --dataset
        raise UserError(
            f"{denoiser.path}'s card names dataset {dataset!r}, which evaluate cannot measure: "
            "if the model was trained on Fashion-MNIST or MNIST, import it again with "
            "`import-diffusers --dataset fashion_mnist|mnist`; other data is not measurable by "
            "evaluate yet"
        )
    if req.dataset is not None and canonical_dataset(req.dataset) != dataset:
        raise UserError(
            f"{denoiser.path} is a {dataset} model, but --dataset {req.dataset} was asked for; "
            f"a model is measured against its own dataset: drop --dataset or pass a "
            f"{canonical_dataset(req.dataset)} model"
        )
    classifier = _classifier(req, denoiser, dataset)
    min_n = classifier.feature_dim if classifier else PIXEL_FEATURES
    if req.n <= min_n:
        raise UserError(min_n_message(req.n, min_n))
    parse_class(denoiser.card, req.class_)  # a class choice the model cannot take: one line, now
    return denoiser, classifier, dataset


def _classifier(req: EvalRequest, denoiser, dataset: str) -> Classifier | None:
    """The domain classifier of the model's dataset; None for a folder dataset (none exists)."""
    if dataset == "folder":
        if req.classifier is not None:
            raise UserError(
                "--classifier: a folder dataset is judged without a domain classifier (two-sample "
                "test, precision/recall and FD in pixel PCA space); drop --classifier"
            )
        return None
    classifier = Classifier(req.classifier or shipped_classifier(dataset))
    if classifier.dataset != dataset:
        raise UserError(
            f"classifier {classifier.path} was trained on {classifier.dataset}, but "
            f"{denoiser.path} generates {dataset} images; pass a {dataset} classifier "
            f"(or drop --classifier to use the shipped one)"
        )
    classifier.check_images(denoiser.image_shape, str(denoiser.path))
    return classifier


def classifier_report(classifier: Classifier, real: RealImages, x: np.ndarray, asked) -> dict:
    """What the domain classifier says: its FD, class shares and confidence, asked-class accuracy."""
    test_feats, test_probs = classifier(to_model_space(real.test))
    test_stats = gaussian_stats(test_feats)
    real_feats, real_probs = classifier(to_model_space(real.train))
    feats, probs = classifier(as_viewed(x))
    classes = classifier.card["classes"]
    return {
        **({} if asked is None else conditional_report(probs, asked, classes)),
        "fd": frechet_distance(*gaussian_stats(feats), *test_stats),
        **class_report(probs, classes),
        "real": {
            "fd": frechet_distance(*gaussian_stats(real_feats), *test_stats),
            **class_report(real_probs, classes),
        },
        "classifier": {
            "path": str(classifier.path),
            "sha256": sha256_file(classifier.path),
            "test_accuracy": classifier.card["test_accuracy"],
            "test_accuracy_here": float(np.mean(test_probs.argmax(axis=1) == real.test_labels)),
        },
        "features": (feats, real_feats, test_feats),
    }


def evaluate(req: EvalRequest) -> dict:
    req.validate()
    denoiser, classifier, dataset = _load(req)
    T = denoiser.schedule.T
    req = req.for_model(denoiser.card)  # a distilled model's own sampler, or the defaults
    req.guidance = guidance_for(denoiser.card, req.guidance)
    req.check(req.n, T)
    real = real_images(denoiser.card, req.data_root, REAL_N)  # before the long part: fail early
    x, seconds = generate(denoiser, req)
    pixels = to_uint8(x)
    asked = asked_labels(req, denoiser.card)
    if classifier is not None:
        by_classifier = classifier_report(classifier, real, x, asked)
        feats = by_classifier.pop("features")
    else:
        by_classifier, pixel_features = {"real": {}}, PixelFeatures(real.train, PIXEL_FEATURES)
        feats = tuple(pixel_features(a) for a in (pixels, real.train, real.test))
    judged = judge(
        pixels, feats[0], real.train, feats[1], real.test, feats[2], two_sample=req.two_sample
    )
    real_floors = judged.pop("real")
    if not req.two_sample:  # the request's flag shares the result's name: say it in words
        judged["two_sample_skipped"] = "--no-two-sample"
    return {
        **{
            k: v
            for k, v in asdict(req).items()
            if k not in ("progress", "data_root", "guidance", "precision", "two_sample")
        },
        "backend_precision": req.precision,  # openvino's fp32/bf16; "precision" is the judge's
        "guidance": None if asked is None else req.guidance,
        "labels": "none"
        if asked is None
        else ("balanced" if parse_class(denoiser.card, req.class_) == ALL else "random"),
        "model": str(denoiser.path),
        "model_sha256": sha256_file(denoiser.path) if denoiser.path.is_file() else None,
        "dataset": dataset,
        "features": "classifier" if classifier is not None else f"pixel PCA-{PIXEL_FEATURES}",
        "steps": steps_run(req.steps, denoiser.schedule.T),
        "network_calls": req.calls,
        "device": denoiser.device,
        "share_outside_range": float(np.mean(np.abs(x) > 1.0)),
        **by_classifier,
        **judged,
        "seconds": round(seconds, 2),
        "images_per_second": round(req.n / seconds, 3),
        "real": {"n": len(real.train), **by_classifier["real"], **real_floors},
        "ddpm_deploy": __version__,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
    }


def summary(r: dict) -> str:
    mode = f"{r['sampler']}-{r['steps']}" + ("" if r["clip"] else " no-clip")
    if r.get("labels", "none") != "none":
        kind = "class-conditional" if r["labels"] == "balanced" else "random classes"
        mode += f", {kind}, guidance {r['guidance']}"
    return "\n".join(
        [
            f"{r['dataset']} model {r['model']} ({r['backend']} on {r['device']}), {mode}, "
            f"n={r['n']}, seed {r['seed']}",
            *classifier_lines(r),
            *judge_lines(r),
            f"  outside [-1, 1]     {r['share_outside_range']:.2%} of raw sample values",
            f"  generation          {r['seconds']:.1f} s ({r['images_per_second']:.2f} images/s)",
            *conditional_lines(r),
        ]
    )


def classifier_lines(r: dict) -> list[str]:
    if "fd" not in r:
        return [f"  (no domain classifier for a {r['dataset']} dataset: judged in pixel space)"]
    top = ", ".join(f"{c} {k}" for c, k in r["class_counts"].items())
    return [
        f"  FD                  {r['fd']:.3f}   (real-data floor, {r['real']['n']} training "
        f"images: {r['real']['fd']:.3f})",
        f"  class deviation     {r['max_class_deviation']:.4f}   (real: "
        f"{r['real']['max_class_deviation']:.4f}; largest |share - 1/K|)",
        f"  mean confidence     {r['mean_confidence']:.4f}   (real: {r['real']['mean_confidence']:.4f})",
        f"  classes             {top}",
    ]


def conditional_lines(r: dict) -> list[str]:
    if "class_accuracy" not in r:
        return []
    each = ", ".join(f"{c} {a:.1%}" for c, a in r["per_class_accuracy"].items())
    return [
        f"  asked class found   {r['class_accuracy']:.2%} at guidance {r['guidance']} (classifier "
        f"on real test images: {r['classifier']['test_accuracy_here']:.2%})",
        f"  per class           {each}",
    ]
