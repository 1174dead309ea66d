"""The model card: what a checkpoint or ONNX file must say about itself.

The same JSON travels in the checkpoint (safetensors metadata) and in the ONNX file
(``metadata_props``), so the sampler rebuilds everything from the model file alone.
"""

from __future__ import annotations

import json
import math

from ddpm_deploy.card_checks import (
    CLASSIFIER_VALIDATOR,
    check_gaussian,
    check_grid,
    schema_errors,
)
from ddpm_deploy.errors import UserError
from ddpm_deploy.schedule import Schedule

FORMAT = "ddpm-deploy/1"
CARD_KEY = "ddpm_deploy.card"  # the metadata_props key that holds the card in ONNX files
# a domain classifier's card (train-classifier writes it, evaluate reads it; its format and schema:
# card_schema.py)
CLASSIFIER_KEY = "ddpm_deploy.classifier"
REQUIRED_KEYS = ("format", "arch", "schedule", "image", "dataset")

# Names accepted on the command line -> canonical dataset name stored in cards.
DATASETS = {
    "fashion_mnist": "fashion_mnist",
    "fashion": "fashion_mnist",
    "mnist": "mnist",
    "folder": "folder",  # a folder of images, class per sub-folder (ddpm_deploy/image_folder.py)
}
CLASSES = {
    "fashion_mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
    "mnist": [str(i) for i in range(10)],
}
MNIST_SHAPE = (1, 28, 28)  # the IDX datasets' images, and the reference UNet's only shape


def canonical_dataset(name: str) -> str:
    key = name.lower().replace("-", "_")
    if key not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; choose from {sorted(DATASETS)}")
    return DATASETS[key]


def make_card(
    *,
    arch: dict,
    schedule: Schedule,
    dataset: str,
    training: dict | None = None,
    weights: str = "model",
    classes: list[str] | None = None,
    data: dict | None = None,
) -> dict:
    """``data``: how a folder dataset was read (ddpm_deploy/image_folder.py), so it can be re-read."""
    dataset = canonical_dataset(dataset)
    card = {
        "format": FORMAT,
        "arch": arch,
        "schedule": schedule.to_dict(),
        "image": {"shape": list(arch_image_shape(arch)), "range": [-1.0, 1.0]},
        "dataset": dataset,
        "classes": list(classes if classes is not None else CLASSES.get(dataset, [])),
        "weights": weights,
        "training": training or {},
    }
    if data is not None:
        card["data"] = data
    return card


def arch_image_shape(arch: dict) -> tuple[int, int, int]:
    """(C, H, W) of the images an architecture section's model takes (older cards: 1 x 28 x 28)."""
    size = int(arch.get("image_size", MNIST_SHAPE[1]))
    return (int(arch.get("channels", MNIST_SHAPE[0])), size, size)


def image_shape(card: dict) -> tuple[int, int, int]:
    """(C, H, W) of the model's images, from its card: the one source of the image shape."""
    c, h, w = (int(v) for v in card["image"]["shape"])
    return (c, h, w)


def strict_json(text: str, source: str, how_to_fix: str) -> object:
    """A card's JSON text, parsed strictly: no NaN, no Infinity, no 1e400."""

    def not_json(word: str) -> float:
        raise ValueError(f"{word} is not a JSON number")

    def finite(word: str) -> float:
        value = float(word)
        return value if math.isfinite(value) else not_json(word)

    try:
        return json.loads(text, parse_constant=not_json, parse_float=finite)
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise UserError(
            f"{source}'s card is not valid JSON ({str(e)[:100]}); {how_to_fix}"
        ) from None


def parse_card(text: str, source: str, how_to_fix: str) -> dict:
    """A model card's JSON text, parsed strictly and validated (``validate_card``)."""
    return validate_card(strict_json(text, source, how_to_fix), source, how_to_fix)


def parse_classifier_card(text: str, source: str, how_to_fix: str) -> dict:
    """A domain classifier's card, parsed strictly and checked against its schema
    (card_schema.py ``CLASSIFIER_SCHEMA``); its class names distinct."""
    card = strict_json(text, source, how_to_fix)
    for problem in schema_errors(card, CLASSIFIER_VALIDATOR):
        raise UserError(f"{source}'s classifier card: {problem}; {how_to_fix}")
    assert isinstance(card, dict)  # the schema's first rule
    if len(set(card["classes"])) != len(card["classes"]):
        raise UserError(f"{source}'s classifier card: two classes share a name; {how_to_fix}")
    return card


def validate_card(card: object, source: str, how_to_fix: str) -> dict:
    """The one check of a card read from a file, before any of its fields is used: the schema
    (ddpm_deploy/card_schema.py: types, values, bounds), then what each field says of another."""
    if isinstance(card, dict):
        missing = [k for k in REQUIRED_KEYS if k not in card]
        if missing:
            raise UserError(f"{source} lacks model metadata {missing}; {how_to_fix}")
    for problem in schema_errors(card):
        raise UserError(f"{source}'s card: {problem}; {how_to_fix}")
    assert isinstance(card, dict)  # the schema's first rule
    try:
        Schedule.from_dict(card["schedule"])  # finite betas in (0, 1), alpha_bar decreasing
    except UserError as e:
        raise UserError(f"{source}'s card: {e}; {how_to_fix}") from None
    check_fields(card, source, how_to_fix)
    return card


def check_fields(card: dict, source: str, how_to_fix: str) -> None:
    """What one field says of another, on a card that passed the schema: the image shape against
    the architecture and the data, the classes, the sampler's grid against T, the statistics."""

    def bad(what: str) -> UserError:
        return UserError(f"{source}'s card: {what}; {how_to_fix}")

    arch, shape = card["arch"], card["image"]["shape"]
    if "image_size" in arch and list(arch_image_shape(arch)) != shape:
        raise bad(
            f"image shape {shape} differs from the architecture's {list(arch_image_shape(arch))}"
        )
    data = card.get("data")
    if data is not None and [data["channels"], data["size"], data["size"]] != shape:
        raise bad(
            f"data.size {data['size']} and data.channels {data['channels']} differ from image.shape {shape}"
        )
    k = num_classes(card)
    names = class_names(card)
    if k and len(names) != k:
        raise bad(f"{k} classes need {k} class names, got {len(names)}")
    if len(set(names)) != len(names):
        raise bad("classes: two classes share a name")
    T = card["schedule"]["T"]
    for key in ("sampler", "sampler_graph"):
        own = card.get(key)
        if own:
            check_grid(own, T, f"{key}.", bad)
    if card.get("gaussian"):
        check_gaussian(card["gaussian"], k, shape[0] * shape[1] * shape[2], bad)


def num_classes(card: dict) -> int:
    """0 for an unconditional model; K for a class-conditional one (labels 0..K-1, null label K)."""
    return int(card["arch"].get("num_classes", 0))


def class_names(card: dict) -> list[str]:
    return list(card.get("classes") or CLASSES.get(card["dataset"], []))


def card_schedule(card: dict) -> Schedule:
    return Schedule.from_dict(card["schedule"])


def dumps(card: dict) -> str:
    return json.dumps(card, sort_keys=True)
