"""The domain classifier's card is input too (issue 35): `evaluate --classifier FILE` checks it
against its schema (ddpm_deploy/card_schema.py CLASSIFIER_SCHEMA) and against the graph before any
image is judged; each edit ends in one `Error:` line naming the field, never a traceback."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from ddpm_deploy.runtime.classifier import Classifier, shipped_classifier

from ddpm_deploy.card import CLASSIFIER_KEY
from ddpm_deploy.errors import UserError
from tests.helpers import assert_one_line_error, run_cli

onnx = pytest.importorskip("onnx")


def shipped_card() -> dict:
    model = onnx.load(str(shipped_classifier("fashion_mnist")))
    return json.loads(next(p.value for p in model.metadata_props if p.key == CLASSIFIER_KEY))


def with_card(path, text: str):
    model = onnx.load(str(shipped_classifier("fashion_mnist")))
    for prop in model.metadata_props:
        if prop.key == CLASSIFIER_KEY:
            prop.value = text
    onnx.save(model, str(path))
    return path


def edited(**changes) -> str:
    card = shipped_card()
    for key, value in changes.items():
        if value is KeyError:
            del card[key]
        else:
            card[key] = value
    return json.dumps(card)


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("{not json", ["card is not valid JSON"]),
        ("null", ["classifier card: the card: None is not object"]),
        (edited(feature_dim=float("nan")), ["card is not valid JSON", "NaN"]),
        (edited(feature_dim="128"), ["feature_dim: '128' is not integer"]),
        (edited(feature_dim=10**12), ["feature_dim: 1000000000000 must be <="]),
        (edited(classes=[]), ["classes: has 0 entries"]),
        (edited(classes=["a"] * 10), ["two classes share a name"]),
        (edited(classes=[str(i) for i in range(20_000)]), ["classes: has 20000 entries"]),
        (edited(test_accuracy=KeyError), ["'test_accuracy' is missing"]),
        (edited(format="other/1"), ["format: 'other/1' is not one of"]),
        (edited(input={"shape": [1, 10**9, 28]}), ["input.shape[1]: 1000000000 must be <="]),
        (edited(extra=1), ["unknown key(s) ['extra']"]),
        # evaluate feeds model space: a card claiming another input range was accepted, unread
        (edited(input={"shape": [1, 28, 28], "range": [0, 1]}), ["input.range: [0, 1] is not"]),
        # the schema passes; the graph says otherwise
        (edited(feature_dim=64), ["differs from its card", "[64, 10] out"]),
        (edited(classes=[str(i) for i in range(9)]), ["differs from its card", "[128, 9] out"]),
        (edited(input={"shape": [3, 28, 28]}), ["differs from its card", "[3, 28, 28] in"]),
    ],
)
def test_an_edited_classifier_card_is_one_line(tmp_path, text, fragments):
    path = with_card(tmp_path / "classifier.onnx", text)
    result = run_cli("evaluate", "--classifier", path, "-n", "200", "--data-root", tmp_path)
    assert_one_line_error(result, *fragments)


def test_a_graph_that_computes_other_widths_than_it_declares(tmp_path):
    """Declared [N, 128] and [N, 10]; computed [N, 784] each, through a shape ONNX Runtime cannot
    infer (it depends on x's values), so the declared shapes pass: refused at the first batch."""
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 28, 28])
    outs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", width])
        for name, width in (("features", 128), ("logits", 10))
    ]
    consts = [
        numpy_helper.from_array(np.array([784.0], np.float32), "width"),
        numpy_helper.from_array(np.array([-1], np.int64), "rows"),
    ]
    nodes = [
        helper.make_node("ReduceMax", ["x"], ["top"], keepdims=0),
        helper.make_node("Sub", ["top", "top"], ["zero"]),  # 0, but only once x is known
        helper.make_node("Add", ["zero", "width"], ["w"]),
        helper.make_node("Cast", ["w"], ["w64"], to=TensorProto.INT64),
        helper.make_node("Concat", ["rows", "w64"], ["shape"], axis=0),
        *(helper.make_node("Reshape", ["x", "shape"], [name]) for name in ("features", "logits")),
    ]
    model = helper.make_model(helper.make_graph(nodes, "liar", [x], outs, consts))
    helper.set_model_props(model, {CLASSIFIER_KEY: json.dumps(shipped_card())})
    onnx.save(model, str(tmp_path / "liar.onnx"))
    classifier = Classifier(tmp_path / "liar.onnx")
    with pytest.raises(UserError, match=r"computed \(784,\) features and \(784,\) logits"):
        classifier(np.zeros((2, 1, 28, 28), np.float32))


def test_the_shipped_classifiers_pass():
    for dataset in ("fashion_mnist", "mnist"):
        classifier = Classifier(shipped_classifier(dataset))
        assert classifier.widths == (128, 10) and classifier.input_shape == (1, 28, 28)


def test_a_classifier_path_that_is_no_file_says_what_it_is(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    cases = {"fifo": "is a FIFO", "folder": "is a folder", "absent.onnx": "does not exist"}
    for name, fragment in cases.items():
        result = run_cli("evaluate", "--classifier", tmp_path / name, "-n", "200")
        assert_one_line_error(result, "--classifier", fragment)


def test_a_classifier_whose_input_is_not_named_x(tmp_path):
    """Its shapes matched its card; ONNX Runtime then refused the feed {"x": ...} (a traceback)."""
    from onnx import TensorProto, helper

    img = helper.make_tensor_value_info("img", TensorProto.FLOAT, ["batch", 1, 28, 28])
    outs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", width])
        for name, width in (("features", 128), ("logits", 10))
    ]
    shape = onnx.numpy_helper.from_array(np.array([-1, 784], np.int64), "s")
    nodes = [helper.make_node("Reshape", ["img", "s"], ["flat"])]
    nodes += [
        helper.make_node("Slice", ["flat", f"{n}0", f"{n}1"], [n]) for n in ("features", "logits")
    ]
    ends = {"features": (0, 128), "logits": (0, 10)}
    consts = [shape] + [
        onnx.numpy_helper.from_array(np.array([v], np.int64), f"{n}{i}")
        for n, pair in ends.items()
        for i, v in enumerate(pair)
    ]
    for node in nodes[1:]:
        node.input.append("axis1")
    consts.append(onnx.numpy_helper.from_array(np.array([1], np.int64), "axis1"))
    model = helper.make_model(helper.make_graph(nodes, "img", [img], outs, consts))
    helper.set_model_props(model, {CLASSIFIER_KEY: json.dumps(shipped_card())})
    onnx.save(model, str(tmp_path / "img.onnx"))
    result = run_cli("evaluate", "--classifier", tmp_path / "img.onnx", "-n", "200")
    assert_one_line_error(result, "differs from its card (x [1, 28, 28] in")
