"""Issue 35 probes of the IDX data and of `train-classifier`: labels outside the dataset's classes
are refused where they are read (D4), -o is checked before any work (D15), and --dataset offers
only the IDX datasets the classifier judges (D16). Tiny fake IDX data: nothing real is trained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ddpm_deploy.errors import UserError
from tests.helpers import assert_one_line_error, run_cli, write_idx


def bad_labels(folder: Path, split: str = "train", value: int = 255) -> Path:
    """``write_idx``'s data with one split's labels all ``value``."""
    write_idx(folder, n=32)
    path = folder / f"{split}-labels-idx1-ubyte"
    count = int.from_bytes(path.read_bytes()[4:8], "big")
    path.write_bytes(path.read_bytes()[:8] + bytes([value]) * count)
    return path


@pytest.mark.parametrize("split", ["train", "t10k"])
def test_labels_outside_the_classes_are_refused_where_read(tmp_path, split):
    from ddpm_deploy.datasets import load_split

    path = bad_labels(tmp_path, split)
    with pytest.raises(UserError, match=r"labels-idx1-ubyte holds label 255") as caught:
        load_split("mnist", tmp_path, train=split == "train")
    assert str(path) in str(caught.value) and "0..9" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_largest_label_is_accepted(tmp_path):
    from ddpm_deploy.datasets import load_split

    bad_labels(tmp_path, value=9)
    assert set(load_split("fashion_mnist", tmp_path).labels.tolist()) == {9}


def test_train_classifier_refuses_bad_labels_in_one_line(tmp_path):
    bad_labels(tmp_path / "data")
    result = run_cli(
        "train-classifier", "--data-root", tmp_path / "data", "--epochs", "1",
        "--device", "cpu", "-o", tmp_path / "c.onnx",
    )  # fmt: skip
    assert_one_line_error(result, "train-labels-idx1-ubyte", "label 255")
    assert not (tmp_path / "c.onnx").exists()


def test_train_with_classes_refuses_bad_labels_in_one_line(tmp_path):
    bad_labels(tmp_path / "data")
    result = run_cli(
        "train", "--dataset", "mnist", "--data-root", tmp_path / "data", "--cond",
        "--epochs", "1", "--limit", "8", "--base", "8", "--no-download", "--device", "cpu",
        "--out", tmp_path / "run",
    )  # fmt: skip
    assert_one_line_error(result, "train-labels-idx1-ubyte", "label 255")
    assert not (tmp_path / "run").exists()


def test_train_classifier_checks_its_output_before_any_work(tmp_path):
    """The data root is empty: a refusal of -o proves it came before the data was looked for."""
    (tmp_path / "f").write_text("a file, not a folder")
    result = run_cli(
        "train-classifier", "--data-root", tmp_path / "empty", "-o", tmp_path / "f" / "x.onnx"
    )
    assert_one_line_error(result, f"the output {tmp_path / 'f'} is a file, not a folder")
    assert (tmp_path / "f").read_text() == "a file, not a folder"
    assert not (tmp_path / "empty").exists()


def test_train_classifier_offers_only_the_idx_datasets(tmp_path):
    help_text = run_cli("train-classifier", "--help").output
    assert (
        "[fashion_mnist|fashion|mnist]" in help_text
        and "folder" not in help_text.split("--data-root")[0].split("--dataset")[1]
    )
    result = run_cli("train-classifier", "--dataset", "folder", "-o", tmp_path / "c.onnx")
    assert result.exit_code == 2 and "'folder' is not one of" in result.output
    assert "ddpm_deploy.image_folder" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_the_classifier_api_names_the_datasets_it_judges():
    from ddpm_deploy.train.classifier import ClassifierConfig

    with pytest.raises(UserError, match="fashion_mnist or mnist") as caught:
        ClassifierConfig(dataset="folder").validate()
    assert "image_folder" not in str(caught.value)


def test_real_labels_still_load(data_root):
    from ddpm_deploy.datasets import load_split

    labels = load_split("fashion_mnist", data_root, train=False).labels
    assert np.bincount(labels).tolist() == [1000] * 10
