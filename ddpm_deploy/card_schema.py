"""The one schema of every model card (docs/ARCHITECTURE.md, "The card is input").

A card comes from a file anyone may have edited: ONNX ``metadata_props``, a checkpoint's
safetensors metadata, the card a diffusers folder embeds, a distill folder's student. Its whole
shape is ``SCHEMA``, checked by ``jsonschema`` (ddpm_deploy/card_checks.py) before any field is
used: the types of
every field, the values each may take and an upper bound on every size (T, image sides, widths,
class counts, statistics, grids, string lengths), so no edit can ask for more memory than a real
model of that size needs (the bounds: ddpm_deploy/bounds.py). What one field says about another
(the image shape against the architecture, a grid against T, the statistics' lengths against
their shape) is checked next; ``ddpm_deploy/card.py``'s ``validate_card`` runs both, and nothing
reads a card before both passed.
"""

from __future__ import annotations

from ddpm_deploy.bounds import (
    MAX_B64,
    MAX_CLASSES,
    MAX_GUIDANCE,
    MAX_ITEMS,
    MAX_RANK,
    MAX_SIDE,
    MAX_T,
    MAX_TEXT,
    MAX_WIDTH,
)
from ddpm_deploy.image_folder import RESAMPLE

SAMPLER_NAMES = ("ddpm", "ddim", "dpm++2m", "dpm++3m", "ipndm")  # runtime/methods.py SAMPLERS
MIX_SAMPLERS = ("dpm++2m",)  # the samplers that take learned corrections (``takes_mix``)
GAUSSIAN_FORMAT = "ddpm-deploy-gaussian/1"
CLASSIFIER_FORMAT = "ddpm-deploy-classifier/1"  # a domain classifier's card (train-classifier)


def _int(lo: int, hi: int) -> dict:
    return {"type": "integer", "minimum": lo, "maximum": hi}


def _num(lo: float, hi: float, *, below_hi: bool = False, above_lo: bool = False) -> dict:
    out: dict = {"type": "number"}
    out["exclusiveMinimum" if above_lo else "minimum"] = lo
    out["exclusiveMaximum" if below_hi else "maximum"] = hi
    return out


def _text(limit: int = MAX_TEXT) -> dict:
    return {"type": "string", "maxLength": limit}


def _obj(props: dict, required: tuple = (), extra: bool | dict = False) -> dict:
    return {
        "type": "object",
        "properties": props,
        "required": list(required),
        "additionalProperties": extra,
    }


def _or_null(schema: dict) -> dict:
    """``schema`` or null (a type list, not anyOf: the error then names the real rule)."""
    if "enum" in schema:
        return {"enum": [*schema["enum"], None]}
    return {**schema, "type": [schema["type"], "null"]}


NULL_GUIDANCE = _or_null(_num(0, MAX_GUIDANCE))
CHANNELS = {"enum": [1, 3]}
# a free-form value (a diffusers config's other fields): scalars of bounded size, short lists
SMALL = {
    "anyOf": [
        {"type": ["null", "boolean"]},
        _text(256),
        _num(-1e6, 1e6),
        {"type": "array", "maxItems": 16, "items": {"$ref": "#/$defs/small"}},
    ]
}
RESUNET = _obj(
    {
        "name": {"const": "resunet"},
        "base": _int(1, MAX_WIDTH),
        "mults": {"type": "array", "minItems": 3, "maxItems": 3, "items": _int(1, 16)},
        "blocks": _int(1, 16),
        "attention": {"type": "boolean"},
        "groups": _int(1, MAX_WIDTH),
        "dropout": _num(0, 1, below_hi=True),
        "num_classes": _int(0, MAX_CLASSES),
        "embedding": _text(64),
        "channels": CHANNELS,
        "image_size": _int(8, MAX_SIDE),
    },
    ("name",),
)
REFERENCE = _obj(
    {"name": {"const": "reference-unet"}, "time_dim": _int(2, MAX_WIDTH), "embedding": _text(64)},
    ("name",),
)
UNET_CONFIG = _obj(
    {
        "in_channels": CHANNELS,
        "out_channels": CHANNELS,
        "sample_size": {
            "anyOf": [
                _int(1, MAX_SIDE),
                {"type": "array", "minItems": 2, "maxItems": 2, "items": _int(1, MAX_SIDE)},
            ]
        },
        "block_out_channels": {
            "type": "array",
            "minItems": 1,
            "maxItems": 8,
            "items": _int(1, MAX_WIDTH),
        },
        "layers_per_block": _int(1, 16),
        "downsample_padding": {"enum": [0, 1]},  # more shifts every level's shape (and memory)
        "norm_num_groups": _or_null(_int(1, MAX_WIDTH)),
        "num_class_embeds": _or_null(_int(0, MAX_CLASSES + 1)),
        "num_train_timesteps": _or_null(_int(1, MAX_T)),
        "time_embedding_dim": _or_null(_int(1, 4 * MAX_WIDTH)),
        "attention_head_dim": _or_null(_int(1, MAX_WIDTH)),
    },
    extra={"$ref": "#/$defs/small"},
)
# a diffusers scheduler_config.json, held to MAX_T before diffusers builds its T betas
SCHEDULER_CONFIG = _obj(
    {
        "num_train_timesteps": _int(1, MAX_T),
        "trained_betas": _or_null({"type": "array", "maxItems": MAX_T, "items": _num(0, 1)}),
    },
    extra={"$ref": "#/$defs/small"},
)
DIFFUSERS = _obj(
    {
        "name": {"const": "diffusers-unet2d"},
        "unet": UNET_CONFIG,
        "embedding": _text(64),
        "channels": CHANNELS,
        "image_size": _int(1, MAX_SIDE),
        "num_classes": _int(0, MAX_CLASSES),
        "null_label": {"type": "boolean"},
    },
    ("name", "unet"),
)
ARCHS = {"resunet": RESUNET, "reference-unet": REFERENCE, "diffusers-unet2d": DIFFUSERS}
ARCH = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"enum": list(ARCHS)}},
    "allOf": [{"if": {"properties": {"name": {"const": n}}}, "then": s} for n, s in ARCHS.items()],
}
SCHEDULE = _obj(
    {
        "name": {"enum": ["linear", "cosine"]},
        "T": _int(1, MAX_T),
        # the betas of a linear schedule lie between these two: each in (0, 1)
        "beta_start": _num(0, 1, above_lo=True, below_hi=True),
        "beta_end": _num(0, 1, above_lo=True, below_hi=True),
        # cosine: the offset s >= 0 (s = -1 divides by zero), betas clipped to max_beta < 1
        "s": _num(0, 1),
        "max_beta": _num(0, 1, above_lo=True, below_hi=True),
    },
    ("name", "T"),
)
TIMESTEPS = {"type": "array", "minItems": 1, "maxItems": MAX_T, "items": _int(0, MAX_T - 1)}
SAMPLER_FIELDS = {
    "sampler": {"enum": list(SAMPLER_NAMES)},
    "timesteps": TIMESTEPS,
    "clip": {"type": "boolean"},
    "eta": _num(0, 1),
    "analytic": _int(0, MAX_T - 1),
    "mix": _or_null({"type": "array", "maxItems": MAX_T, "items": _num(-10, 10)}),
    "guidance": NULL_GUIDANCE,
}
SAMPLER = _obj(SAMPLER_FIELDS, ("sampler", "timesteps"))
SAMPLER_GRAPH = _obj(
    {
        **SAMPLER_FIELDS,
        "noise": {"enum": ["seed", "input"]},
        "xor": {"enum": ["bitwise", "arithmetic"]},
        "target": {"enum": ["ort", "tensorrt", "web"]},  # export/sampler_plan.py TARGETS
        "analytic_dtype": {"enum": ["float64", "float32"]},
        "precision": {"enum": ["fp32", "fp16"]},
        "variance": {"enum": ["beta", "posterior"]},
    },
    ("sampler", "timesteps", "analytic", "clip", "noise", "xor"),
)
GAUSSIAN = _obj(
    {
        "format": {"const": GAUSSIAN_FORMAT},
        "groups": _int(1, MAX_CLASSES + 1),
        "rank": _int(1, MAX_RANK),
        "dim": _int(1, 3 * MAX_SIDE * MAX_SIDE),
        "mean": _text(MAX_B64),
        "vectors": _text(MAX_B64),
        "variances": _text(MAX_B64),
    },
    ("format", "groups", "rank", "dim", "mean", "vectors", "variances"),
)
DATA = _obj(
    {
        "root": _text(),
        "size": _int(1, MAX_SIDE),
        "channels": CHANNELS,
        "background": {"type": "array", "minItems": 3, "maxItems": 3, "items": _int(0, 255)},
        "resample": {"enum": list(RESAMPLE)},
        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "files": _int(0, 10**9),
        "layout": {"enum": ["class-folders", "flat"]},
    },
    ("root", "size", "channels", "background", "resample", "sha256", "files"),
)
DISTILLED = _obj(
    {
        "method": _text(64),
        "teacher_sha256": _text(64),
        "teacher_weights": _or_null({"enum": ["model", "ema"]}),
        "teacher_sampler": {"type": "object"},
        "guidance": NULL_GUIDANCE,
        "config": {"type": "object"},
        "images_seen": _int(0, 2**62),
        "seconds": _num(0, 1e12),
        "history": {"type": "array", "maxItems": MAX_ITEMS, "items": {"type": "object"}},
    },
    extra=True,
)
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "ddpm-deploy model card",
    "$defs": {"small": SMALL},
    **_obj(
        {
            "format": {"const": "ddpm-deploy/1"},
            "arch": ARCH,
            "schedule": SCHEDULE,
            "image": _obj(
                {
                    "shape": {
                        "type": "array",
                        "prefixItems": [CHANNELS, _int(1, MAX_SIDE), _int(1, MAX_SIDE)],
                        "minItems": 3,
                        "maxItems": 3,
                    },
                    "range": {"type": "array", "maxItems": 2, "items": _num(-1e6, 1e6)},
                },
                ("shape",),
            ),
            "dataset": _text(64),
            "classes": {"type": "array", "maxItems": MAX_CLASSES, "items": _text(256)},
            "weights": {"enum": ["model", "ema"]},
            "training": {"type": "object"},
            "data": DATA,
            "sampler": _or_null(SAMPLER),
            "sampler_graph": SAMPLER_GRAPH,
            "gaussian": _or_null(GAUSSIAN),
            "distilled": _or_null(DISTILLED),
            "learned_sampler": {"type": "object"},
            "precision": {"enum": ["fp32", "fp16", "int8"]},
            "calibration": {"type": "object"},
            "int8_gate": {"type": "object"},
            "diffusers": {"type": "object"},
        },
        ("format", "arch", "schedule", "image", "dataset"),
    ),
}

# The domain classifier's card (train/classifier.py writes it, runtime/classifier.py reads it):
# checked like a model's; what it says of the graph (its input and output widths) is checked there.
CLASSIFIER_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "ddpm-deploy domain classifier card",
    **_obj(
        {
            "format": {"const": CLASSIFIER_FORMAT},
            "dataset": _text(64),
            "classes": {
                "type": "array",
                "minItems": 2,
                "maxItems": MAX_CLASSES,
                "items": _text(256),
            },
            "feature_dim": _int(1, 8 * MAX_WIDTH),
            "input": _obj(
                {
                    "shape": {
                        "type": "array",
                        "prefixItems": [CHANNELS, _int(1, MAX_SIDE), _int(1, MAX_SIDE)],
                        "minItems": 3,
                        "maxItems": 3,
                    },
                    "range": {"const": [-1, 1]},  # what evaluate feeds it (model space)
                },
                ("shape",),
            ),
            "test_accuracy": _num(0, 1),
            "training": {"type": "object"},
        },
        ("format", "dataset", "classes", "feature_dim", "test_accuracy"),
    ),
}
