"""The model card: what a checkpoint or ONNX file must say about itself.

The same JSON travels in the checkpoint (safetensors metadata) and in the ONNX file
(``metadata_props``), so the sampler rebuilds everything from the model file alone.
"""

from __future__ import annotations

import json

from ddpm_deploy.errors import UserError
from ddpm_deploy.schedule import Schedule

FORMAT = "ddpm-deploy/1"
CARD_KEY = "ddpm_deploy.card"  # the metadata_props key that holds the card in ONNX files
# a domain classifier's card (train-classifier writes it, evaluate reads it): key and format
CLASSIFIER_KEY, CLASSIFIER_FORMAT = "ddpm_deploy.classifier", "ddpm-deploy-classifier/1"
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


def validate_card(card: dict, source: str, how_to_fix: str) -> dict:
    missing = [k for k in REQUIRED_KEYS if k not in card]
    if missing:
        raise UserError(f"{source} lacks model metadata {missing}; {how_to_fix}")
    if card["format"] != FORMAT:
        raise UserError(
            f"{source} has card format {card['format']!r}, expected {FORMAT!r}; {how_to_fix}"
        )
    Schedule.from_dict(card["schedule"])  # raises a UserError if the schedule is unknown
    check_fields(card, source, how_to_fix)
    return card


def check_fields(card: dict, source: str, how_to_fix: str) -> None:
    """The fields every reader trusts: the image shape, the class count and names."""

    def bad(what: str) -> UserError:
        return UserError(f"{source}'s card: {what}; {how_to_fix}")

    arch, shape = (
        card.get("arch"),
        card.get("image", {}).get("shape") if isinstance(card.get("image"), dict) else None,
    )
    if not isinstance(arch, dict):
        raise bad(f"arch must be an object, got {arch!r}")
    if not (
        isinstance(shape, list)
        and len(shape) == 3
        and all(type(v) is int and 1 <= v <= 4096 for v in shape)
        and shape[0] in (1, 3)
    ):
        raise bad(f"image shape {shape!r} is not [C, H, W] with C 1 or 3 and sides 1..4096")
    if "image_size" in arch and list(arch_image_shape(arch)) != shape:
        raise bad(
            f"image shape {shape} differs from the architecture's {list(arch_image_shape(arch))}"
        )
    k = arch.get("num_classes", 0)
    if type(k) is not int or not 0 <= k <= 100_000:
        raise bad(f"num_classes {k!r} is not a count")
    names = card.get("classes")
    if (
        k
        and names
        and (
            not isinstance(names, list)
            or len(names) != k
            or not all(isinstance(n, str) for n in names)
        )
    ):
        raise bad(f"{k} classes need {k} class names, got {names!r}")


def num_classes(card: dict) -> int:
    """0 for an unconditional model; K for a class-conditional one (labels 0..K-1, null label K)."""
    return int(card["arch"].get("num_classes", 0))


def class_names(card: dict) -> list[str]:
    return list(card.get("classes") or CLASSES.get(card["dataset"], []))


def card_schedule(card: dict) -> Schedule:
    return Schedule.from_dict(card["schedule"])


def dumps(card: dict) -> str:
    return json.dumps(card, sort_keys=True)
