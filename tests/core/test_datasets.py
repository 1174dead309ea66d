import numpy as np
import pytest

from ddpm_deploy.datasets import load_split, to_model_space
from ddpm_deploy.errors import UserError
from tests.helpers import write_idx


def test_real_fashion_mnist_torchvision_layout(data_root):
    train = load_split("fashion_mnist", data_root, train=True)
    test = load_split("fashion", data_root, train=False)
    assert train.images.shape == (60000, 28, 28) and test.images.shape == (10000, 28, 28)
    assert np.bincount(train.labels).tolist() == [6000] * 10
    x = to_model_space(train.images[:10])
    assert x.shape == (10, 1, 28, 28) and x.min() >= -1 and x.max() <= 1


@pytest.mark.parametrize("gz", [False, True])
def test_plain_folder_gzipped_or_not(tmp_path, gz):
    write_idx(tmp_path, n=32, gz=gz)
    split = load_split("mnist", tmp_path)
    assert split.images.shape == (32, 28, 28) and split.labels.shape == (32,)


def test_missing_files_say_where_it_looked(tmp_path):
    with pytest.raises(UserError, match=r"no mnist IDX files found; looked in .*MNIST/raw"):
        load_split("mnist", tmp_path)


def test_wrong_magic_number(tmp_path):
    write_idx(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x01" + bytes(100))
    with pytest.raises(UserError, match="not an IDX file of 3 dimension"):
        load_split("mnist", tmp_path)


def test_truncated_file(tmp_path):
    write_idx(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(UserError, match="truncated"):
        load_split("mnist", tmp_path)


def test_corrupt_gzip(tmp_path):
    write_idx(tmp_path, gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(UserError, match="corrupt"):
        load_split("mnist", tmp_path)


def test_unknown_dataset():
    with pytest.raises(UserError, match=r"unknown dataset 'cifar10'; choose from"):
        load_split("cifar10", ".")
