"""Issue 35, item 2: a model file is input. Each edit of a shipped model's card that ended in a
traceback, a gigabyte allocation or a blamed model is refused when the card is read: one `Error:`
line naming the field, nothing written, by every command that reads a model (ddpm_deploy/card.py
``validate_card``, the schema in ddpm_deploy/card_schema.py). Each case failed before the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ddpm_deploy.card import CARD_KEY
from ddpm_deploy.errors import UserError
from ddpm_deploy.schedule import Schedule
from ddpm_deploy.shipped import resolve_model
from tests.helpers import assert_one_line_error, run_cli

onnx = pytest.importorskip("onnx")


def with_card_text(src: str, dst: Path, text: str) -> Path:
    """A copy of ``src`` whose card is ``text`` (any bytes a user could put there)."""
    model = onnx.load(str(resolve_model(src)))
    props = {p.key: p.value for p in model.metadata_props}
    props[CARD_KEY] = text
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(dst))
    return dst


def card_of(name: str) -> dict:
    model = onnx.load(str(resolve_model(name)), load_external_data=False)
    return json.loads(next(p.value for p in model.metadata_props if p.key == CARD_KEY))


def edited(name: str, dst: Path, **changes) -> Path:
    """``name``'s card with top-level ``changes``; a key "a.b" edits a field of section a."""
    card = card_of(name)
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            card[section] = {**card[section], field: value}
        else:
            card[key] = value
    return with_card_text(name, dst, json.dumps(card))


# (shipped model, card text or edits, what the error line names). The card text is JSON unless noted.
TEXT_CASES = [
    ("not json", "{'format': 1", "not valid JSON"),
    ("null", "null", "the card: None is not object"),
    ("a string", '"card"', "the card: 'card' is not object"),
    ("a number", "42", "the card: 42 is not object"),
    ("a deep list", "[" * 100_000 + "]" * 100_000, "maximum recursion depth"),
]
EDITS = [
    ("T as a string", {"schedule__T": "1e3"}, "schedule.T: '1e3' is not integer"),
    ("T null", {"schedule__T": None}, "schedule.T: None is not integer"),
    ("T = 5e7", {"schedule__T": 50_000_000}, "schedule.T: 50000000 must be <= 100000"),
    ("T = 1e12", {"schedule__T": 10**12}, "schedule.T: 1000000000000 must be <= 100000"),
    ("T = 1000.0", {"schedule__T": 1000.0}, "schedule.T: 1000.0 is not integer"),
    ("schedule a list", {"schedule": [1, 2]}, "schedule: [1, 2] is not object"),
    ("schedule a string", {"schedule": "linear"}, "schedule: 'linear' is not object"),
    ("beta_end 5", {"schedule__beta_end": 5}, "schedule.beta_end: 5 must be < 1"),
    ("a negative beta", {"schedule__beta_start": -0.01}, "schedule.beta_start: -0.01 must be > 0"),
    (
        "cosine s = -1",
        {"schedule": {"name": "cosine", "T": 1000, "s": -1}},
        "schedule.s: -1 must be >= 0",
    ),  # fmt: skip
    ("sampler a list", {"sampler": ["ddim"]}, "sampler: ['ddim'] is not object or null"),
    (
        "an empty class list",
        {"model": "emoji", "classes": []},
        "9 classes need 9 class names, got 0",
    ),
    ("duplicate classes", {"classes": ["a"] * 10}, "two classes share a name"),
    ("groups Infinity", {"gaussian__groups": 1e400}, "not valid JSON"),
    (
        "groups 2**40",
        {"gaussian__groups": 2**40},
        "gaussian.groups: 1099511627776 must be <= 10001",
    ),  # fmt: skip
    ("distilled a number", {"distilled": 2}, "distilled: 2 is not object or null"),
    ("distilled guidance 1e308", {"distilled": {"guidance": 1e308}}, "distilled.guidance"),
    ("distilled guidance a string", {"distilled": {"guidance": "2"}}, "distilled.guidance"),
    ("arch.base 1e5", {"arch__base": 100_000}, "arch.base: 100000 must be <= 2048"),
    ("arch.groups 0", {"arch__groups": 0}, "arch.groups: 0 must be >= 1"),
    ("data a list", {"data": [1]}, "data: [1] is not object"),
    ("an unknown key", {"evil": 1}, "unknown key(s) ['evil']"),
]
NAN_TEXT = [
    ("T NaN", '"T": NaN', "NaN is not a JSON number"),
    ("T Infinity", '"T": Infinity', "Infinity is not a JSON number"),
]


@pytest.mark.parametrize(("what", "text", "fragment"), TEXT_CASES, ids=[c[0] for c in TEXT_CASES])
def test_a_card_that_is_no_object_is_one_line(tmp_path, what, text, fragment):
    model = with_card_text("mnist", tmp_path / "m.onnx", text)
    result = run_cli("sample", "--model", model, "-n", "1", "--out", tmp_path / "out")
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("what", "changes", "fragment"), EDITS, ids=[c[0] for c in EDITS])
def test_an_edited_card_is_one_line_naming_the_field(tmp_path, what, changes, fragment):
    changes = dict(changes)
    model = edited(changes.pop("model", "mnist"), tmp_path / "m.onnx", **changes)
    result = run_cli("sample", "--model", model, "-n", "1", "--out", tmp_path / "out")
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("what", "field", "fragment"), NAN_TEXT, ids=[c[0] for c in NAN_TEXT])
def test_nan_and_infinity_in_a_card_are_refused(tmp_path, what, field, fragment):
    text = json.dumps(card_of("mnist")).replace('"T": 1000', field)
    model = with_card_text("mnist", tmp_path / "m.onnx", text)
    result = run_cli("sample", "--model", model, "-n", "1", "--out", tmp_path / "out")
    assert_one_line_error(result, fragment)


def test_a_schedule_that_makes_nan_is_refused_where_it_is_built():
    """Past the schema, the schedule itself refuses betas outside (0, 1), naming its parameters,
    so a NaN is never blamed on the model ('the model or its precision is broken') at step 1."""
    for name, params in [("linear", {"beta_end": 5}), ("linear", {"beta_start": -0.01}),
                         ("cosine", {"s": -1.0}), ("linear", {"beta_end": float("nan")})]:  # fmt: skip
        with pytest.raises(UserError, match=f"schedule {name}.*{next(iter(params))}"):
            Schedule(name=name, params=params)


BAD_STATS = {"gaussian__variances": card_of("mnist")["gaussian"]["variances"].replace("A", "/", 8)}


@pytest.mark.parametrize(
    "command",
    [
        ["triton-repo", "{model}", "-o", "{out}"],
        ["bench", "--model", "{model}", "--batch", "1", "--steps", "2", "--rounds", "1"],
        ["learn-sampler", "{model}", "-o", "{out}", "--data-root", "{model}"],
        ["export-web", "--model", "{model}", "-o", "{out}"],
    ],
    ids=lambda c: c[0],
)
@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        (BAD_STATS, "gaussian.variances must be finite and >= 0"),
        ({"schedule__beta_end": 5}, "schedule.beta_end: 5 must be < 1"),
        ({"gaussian__groups": 3}, "gaussian: groups 3, rank 64, dim 784"),
    ],
    ids=["NaN statistics", "beta_end 5", "groups"],
)
def test_what_sample_refuses_every_command_refuses(tmp_path, command, changes, fragment):
    model = edited("mnist", tmp_path / "m.onnx", **changes)
    out = tmp_path / "out"
    args = [a.format(model=model, out=out) for a in command]
    result = run_cli(*args)
    assert_one_line_error(result, fragment)
    assert not out.exists()


def test_a_folder_card_s_root_is_never_read_without_data_root(tmp_path, monkeypatch):
    """learn-sampler (and evaluate) read every image under the absolute folder a card's data.root
    named when --data-root was left out; now they ask for --data-root."""
    monkeypatch.delenv("DDPM_DEPLOY_DATA", raising=False)
    secret = tmp_path / "secret"
    (secret / "a").mkdir(parents=True)
    card = card_of("emoji")
    card["data"] = {**card["data"], "root": str(secret)}
    model = with_card_text("emoji", tmp_path / "m.onnx", json.dumps(card))
    result = run_cli("learn-sampler", model, "-o", tmp_path / "x.onnx", "--calls", "2")
    assert_one_line_error(result, "--data-root")
    assert str(secret) in result.output and not (tmp_path / "x.onnx").exists()


def test_data_size_unlike_the_image_is_refused(tmp_path):
    """data.size 30000 on a 32 x 32 model asked the folder reader for 6.1 GB of two images."""
    model = edited("emoji", tmp_path / "m.onnx", data__size=30000)
    result = run_cli("sample", "--model", model, "-n", "1", "--out", tmp_path / "out")
    assert_one_line_error(result, "data.size: 30000 must be <= 4096")
    model = edited("emoji", tmp_path / "m2.onnx", data__size=16)
    result = run_cli("sample", "--model", model, "-n", "1", "--out", tmp_path / "out")
    assert_one_line_error(result, "data.size 16 and data.channels 3 differ from image.shape")


def test_every_shipped_card_passes(tmp_path):
    from ddpm_deploy.onnx_model import read_card

    for name in ("mnist", "fashion_mnist", "emoji", "mnist_reference", "fashion_mnist_reference"):
        assert read_card(resolve_model(name))["format"] == "ddpm-deploy/1"


def test_the_schema_names_every_registered_sampler():
    """The schema lives in the core, the samplers in the runtime: the two lists must agree."""
    from ddpm_deploy.runtime.methods import SAMPLERS

    from ddpm_deploy.card_schema import MIX_SAMPLERS, SAMPLER_NAMES

    assert list(SAMPLER_NAMES) == list(SAMPLERS)
    assert list(MIX_SAMPLERS) == [n for n, s in SAMPLERS.items() if s.takes_mix]
