"""A card checked: against the schema (ddpm_deploy/card_schema.py) by ``jsonschema``, each failure
one line naming the field, and then what one field says of another: a sampler's grid against the
schedule's T, and the Gaussian statistics' lengths and values against their own shape and the
model's. The statistics are decoded here too, so every command
(not only those that sample) refuses the NaN or the negative variance that ``sample`` refuses."""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable, Iterator

import jsonschema
import numpy as np

from ddpm_deploy.card_schema import (
    CLASSIFIER_SCHEMA,
    GAUSSIAN,
    MIX_SAMPLERS,
    SCHEDULER_CONFIG,
    SCHEMA,
    SMALL,
    UNET_CONFIG,
)
from ddpm_deploy.errors import UserError

Bad = Callable[[str], UserError]


def _finite_number(checker, value) -> bool:
    """JSON has no NaN or Infinity: a number that is one is no number."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and (isinstance(value, int) or math.isfinite(value))
    )


def _integer(checker, value) -> bool:
    """An integer is written as one: 1000.0 is a number, not a count (range(1000.0) fails)."""
    return isinstance(value, int) and not isinstance(value, bool)


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine_many(
        {"number": _finite_number, "integer": _integer}
    ),
)
VALIDATOR = _Validator(SCHEMA)
GAUSSIAN_VALIDATOR = _Validator(GAUSSIAN)  # the statistics alone (runtime/gaussian.py)
CLASSIFIER_VALIDATOR = _Validator(CLASSIFIER_SCHEMA)  # a domain classifier's card
# a diffusers folder's two configs (import-diffusers), before diffusers builds anything from them
UNET_CONFIG_VALIDATOR = _Validator({"$defs": {"small": SMALL}, **UNET_CONFIG})
SCHEDULER_CONFIG_VALIDATOR = _Validator({"$defs": {"small": SMALL}, **SCHEDULER_CONFIG})


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _where(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the card"


def _what(error: jsonschema.ValidationError) -> str:
    """The failed rule in words, never the whole offending value (it may be megabytes)."""
    kind, rule, value = error.validator, error.validator_value, error.instance
    if kind == "type":
        return f"{_short(value)} is not {' or '.join(rule) if isinstance(rule, list) else rule}"
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        sign = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
        return f"{_short(value)} must be {sign[kind]} {rule}"
    if kind in ("enum", "const"):
        return f"{_short(value)} is not one of {rule if kind == 'enum' else [rule]}"
    if kind in ("maxItems", "minItems", "maxLength"):
        return f"has {len(value)} entries; {kind} {rule}"
    if kind == "additionalProperties":
        extra = sorted(set(value) - set(error.schema.get("properties", {})))
        return f"unknown key(s) {_short(extra)}"
    if kind == "required":
        return error.message.replace(" is a required property", " is missing")
    return error.message[:160].replace("\n", " ")


def schema_errors(card: object, validator=VALIDATOR) -> Iterator[str]:
    """How ``card`` breaks the schema, as "field: what is wrong" (the most relevant way only)."""
    best = jsonschema.exceptions.best_match(validator.iter_errors(card))
    if best is not None:
        # an anyOf's (null or an object) failure is explained by the object's own error
        while best.context:
            best = jsonschema.exceptions.best_match(best.context)
        yield f"{_where(best.absolute_path)}: {_what(best)}"


def b64_length(values: int, itemsize: int) -> int:
    """Characters of the padded base64 of ``values`` numbers of ``itemsize`` bytes."""
    return 4 * -(-(values * itemsize) // 3)


def decode(text: str, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """A little-endian base64 array of the card, as float64 of ``shape`` (ValueError if unfit)."""
    try:
        raw = base64.b64decode(text.encode(), validate=True)
    except (binascii.Error, UnicodeEncodeError) as e:
        raise ValueError(f"not base64 ({e})") from None
    a = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
    if a.size != int(np.prod(shape)):
        raise ValueError(f"{a.size} values where {shape} needs {int(np.prod(shape))}")
    return a.reshape(shape).astype(np.float64)


def check_grid(own: dict, T: int, where: str, bad: Bad) -> None:
    """A sampler's (or a sampler graph's) timesteps, analytic steps and corrections."""
    ts = own["timesteps"]
    if max(ts) >= T or any(b >= a for a, b in zip(ts, ts[1:], strict=False)):
        raise bad(f"{where}timesteps must be strictly descending integers in [0, {T})")
    analytic = own.get("analytic", 0)
    if analytic >= len(ts):
        raise bad(f"{where}analytic {analytic} leaves no network call on a grid of {len(ts)}")
    mix = own.get("mix")
    if mix is not None and (own["sampler"] not in MIX_SAMPLERS or len(mix) != len(ts)):
        raise bad(
            f"{where}mix: {len(mix)} corrections for {own['sampler']} on {len(ts)} steps "
            f"(only {list(MIX_SAMPLERS)} take one per step)"
        )


def gaussian_arrays(entry: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The statistics' mean [G, D], directions [G, r, D] and variances [G, r], decoded."""
    g, r, d = entry["groups"], entry["rank"], entry["dim"]
    return (
        decode(entry["mean"], "float32", (g, d)),
        decode(entry["vectors"], "float16", (g, r, d)),
        decode(entry["variances"], "float32", (g, r)),
    )


def check_gaussian(entry: object, k: int, dim: int, bad: Bad) -> None:
    """The statistics against the schema, the model (k classes, dim values per image), their own
    lengths, and their values (finite; variances >= 0)."""
    for problem in schema_errors(entry, GAUSSIAN_VALIDATOR):
        raise bad(f"gaussian.{problem}")
    assert isinstance(entry, dict)
    g, r, d = entry["groups"], entry["rank"], entry["dim"]
    if g != k + 1 or d != dim or r > d:
        raise bad(
            f"gaussian: groups {g}, rank {r}, dim {d} for a model of {k} classes and "
            f"{dim} values per image (groups must be classes + 1, rank <= dim)"
        )
    sizes = {"mean": (g * d, 4), "vectors": (g * r * d, 2), "variances": (g * r, 4)}
    for name, (values, itemsize) in sizes.items():
        if len(entry[name]) != b64_length(values, itemsize):
            raise bad(f"gaussian.{name} holds {len(entry[name])} base64 characters, not "
                      f"{b64_length(values, itemsize)}")  # fmt: skip
    try:
        mean, vectors, variances = gaussian_arrays(entry)
    except ValueError as e:
        raise bad(f"gaussian statistics unreadable ({e})") from None
    if not (np.isfinite(mean).all() and np.isfinite(vectors).all()):
        raise bad("gaussian statistics hold NaN or Inf")
    if not np.isfinite(variances).all() or (variances < 0).any():
        raise bad("gaussian.variances must be finite and >= 0")
