"""Every bad input gets one clear line, a non-zero exit, and no output files."""

import json

import onnx
import pytest
from onnx import TensorProto, helper
from safetensors.torch import load_file, save_file

from tests.helpers import assert_one_line_error, run_cli, write_idx


@pytest.fixture
def tiny_data(tmp_path):
    return write_idx(tmp_path / "data", n=64)


def _not_a_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    return blocker / "sub"  # its parent is a file: no one, root included, can create it


# -- train -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args,fragments",
    [
        (["--dataset", "cifar10"], ["unknown dataset 'cifar10'; choose from"]),
        (["--epochs", "0"], ["--epochs must be positive, got 0"]),
        (["--batch-size", "-4"], ["--batch-size must be positive, got -4"]),
        (["--lr", "0"], ["--lr must be positive"]),
        (["--ema", "1.5"], ["--ema", "1.5 is not in the range x<=1"]),  # at parse time
        (["--schedule", "quadratic"], ["unknown schedule 'quadratic'"]),
        (["--device", "tpu"], ["unknown device 'tpu'"]),
        (["--arch", "vit"], ["unknown --arch 'vit'; choose from ['reference', 'resunet']"]),
        (["--arch", "reference", "--cond"], ["--cond needs --arch resunet"]),
        (
            ["--arch", "reference", "--dropout", "0.1"],
            ["--arch reference has no setting --dropout"],
        ),
        (["--cond", "--cond-drop", "1.5"], ["--cond-drop", "not in the range x<=1"]),
        (["--dropout", "1"], ["--dropout must be in [0, 1)"]),
        (["--base", "12"], ["multiples of groups=8"]),
        (["--warmup", "-1"], ["--warmup must be >= 0 steps"]),
    ],
)
def test_train_bad_options(tmp_path, tiny_data, args, fragments):
    out = tmp_path / "run"
    result = run_cli("train", "--data-root", tiny_data, "--out", out, "--no-download", *args)
    assert_one_line_error(result, *fragments)
    assert not (out / "last.safetensors").exists()


def test_train_missing_data(tmp_path):
    result = run_cli(
        "train", "--data-root", tmp_path / "nothing", "--out", tmp_path / "run", "--no-download"
    )
    assert_one_line_error(result, "no fashion_mnist IDX files found; looked in", "--data-root")


def test_train_failed_download_is_one_line(tmp_path, monkeypatch):
    import torchvision

    class Offline:
        def __init__(self, *a, **k):
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets, "MNIST", Offline)
    result = run_cli(
        "train", "--dataset", "mnist", "--data-root", tmp_path / "d", "--out", tmp_path / "run"
    )
    assert_one_line_error(
        result, "no mnist IDX files found", "the download failed: Error downloading"
    )


@pytest.mark.parametrize("damage", ["magic", "truncate"])
def test_train_corrupt_idx(tmp_path, tiny_data, damage):
    path = tiny_data / "train-images-idx3-ubyte"
    data = path.read_bytes()
    path.write_bytes(b"\x00\x00\x08\x07" + data[4:] if damage == "magic" else data[:-100])
    result = run_cli("train", "--data-root", tiny_data, "--out", tmp_path / "run", "--no-download")
    assert_one_line_error(result, str(path), "magic number" if damage == "magic" else "truncated")


def test_train_unwritable_out(tmp_path, tiny_data):
    result = run_cli(
        "train", "--data-root", tiny_data, "--out", _not_a_dir(tmp_path), "--no-download"
    )
    assert_one_line_error(result, "cannot write to output folder")


def test_resume_without_checkpoint(tmp_path):
    result = run_cli("train", "--resume", tmp_path)
    assert_one_line_error(result, "--resume: no last.safetensors in")


def test_resume_other_architecture(tmp_path, tiny_data):
    out = tmp_path / "run"
    assert (
        run_cli(
            "train", "--data-root", tiny_data, "--out", out, "--epochs", "1", "--no-download"
        ).exit_code
        == 0
    )
    _retagged(out / "last.safetensors", out / "last.safetensors", name="big-unet")
    result = run_cli("train", "--resume", out, "--epochs", "2")
    assert_one_line_error(result, "arch.name", "'big-unet' is not one of")


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--arch", "reference"], "was trained with --arch resunet, not reference"),
        (["--cond"], "was trained with --cond False, not True"),
    ],
)
def test_resume_with_another_arch_or_cond(tmp_path, tiny_data, args, fragment):
    out = tmp_path / "run"
    first = ["--data-root", tiny_data, "--out", out, "--epochs", "1", "--base", "16"]
    assert run_cli("train", *first, "--no-download").exit_code == 0
    before = (out / "last.safetensors").read_bytes()
    result = run_cli("train", "--resume", out, "--epochs", "2", *args)
    assert_one_line_error(result, fragment, "start a new run")
    assert (out / "last.safetensors").read_bytes() == before


# -- export ----------------------------------------------------------------------------------------
def _retagged(src, dst, **arch):
    tensors = load_file(str(src))
    from safetensors import safe_open

    with safe_open(str(src), "pt") as f:
        meta = f.metadata()
    card = json.loads(meta["card"])
    card["arch"].update(arch)
    save_file(tensors, str(dst), metadata={**meta, "card": json.dumps(card)})
    return dst


def test_export_other_architecture(random_checkpoint, tmp_path):
    ckpt = _retagged(random_checkpoint, tmp_path / "other.safetensors", name="big-unet")
    result = run_cli("export", ckpt, "-o", tmp_path / "m.onnx")
    assert_one_line_error(result, "arch.name: 'big-unet' is not one of")
    assert not (tmp_path / "m.onnx").exists()


def test_export_weights_that_do_not_fit(random_checkpoint, tmp_path):
    tensors = load_file(str(random_checkpoint))
    tensors = {k: v for k, v in tensors.items() if "b_mid" not in k}
    from safetensors import safe_open

    with safe_open(str(random_checkpoint), "pt") as f:
        meta = f.metadata()
    save_file(tensors, str(tmp_path / "cut.safetensors"), metadata=meta)
    result = run_cli("export", tmp_path / "cut.safetensors", "-o", tmp_path / "m.onnx")
    assert_one_line_error(result, "does not fit the reference-unet architecture")
    assert not list(tmp_path.glob("*.onnx"))


def test_export_not_safetensors(tmp_path):
    (tmp_path / "x.safetensors").write_bytes(b"\x80\x04garbage" * 10)
    result = run_cli("export", tmp_path / "x.safetensors", "-o", tmp_path / "m.onnx")
    assert_one_line_error(result, "is not a safetensors checkpoint")


def test_export_missing_checkpoint(tmp_path):
    assert_one_line_error(
        run_cli("export", tmp_path / "none", "-o", tmp_path / "m.onnx"), "no checkpoint at"
    )


def test_export_unwritable(random_checkpoint, tmp_path):
    result = run_cli("export", random_checkpoint, "-o", _not_a_dir(tmp_path) / "m.onnx")
    assert_one_line_error(result, "cannot write to output folder")


# -- sample ----------------------------------------------------------------------------------------
def _sample(model, out, *args):
    return run_cli(
        "sample",
        "--model",
        model,
        "--out",
        out,
        "--sampler",
        "ddim",
        "--steps",
        "2",
        "-n",
        "1",
        *args,
    )


def _assert_nothing_written(out):
    assert not out.exists() or not any(out.iterdir())


def test_sample_not_onnx(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_text("this is not a protobuf")
    out = tmp_path / "out"
    assert_one_line_error(_sample(bad, out), "is not a loadable ONNX model", "re-export")
    _assert_nothing_written(out)


def test_sample_wrong_inputs(tmp_path):
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 32, 32])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 32, 32])
    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["y"])], "g", [x], [y])
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    out = tmp_path / "out"
    assert_one_line_error(_sample(path, out), "a ddpm-deploy denoiser takes x: float32[N,C,H,W]")
    _assert_nothing_written(out)


def test_sample_without_metadata(random_onnx, tmp_path):
    proto = onnx.load(str(random_onnx))
    del proto.metadata_props[:]
    path = tmp_path / "bare.onnx"
    onnx.save(proto, str(path))
    out = tmp_path / "out"
    assert_one_line_error(
        _sample(path, out),
        "lacks model metadata ['ddpm_deploy.card']",
        "re-export it with `ddpm-deploy export",
    )
    _assert_nothing_written(out)


@pytest.mark.parametrize(
    "args,fragments",
    [
        (["-n", "0"], ["-n must be between 1 and 1,000,000", "got 0"]),
        (["-n", str(2**40)], ["'-n'", "not in the range x<=1000000"]),  # at parse time
        (["-n", str(10**20)], ["'-n'", "not in the range x<=1000000"]),
        (["--seed", "-1"], ["--seed"]),
        (["--seed", str(2**64)], ["--seed"]),
        (["--eta", "nan"], ["--eta", "not a finite number"]),
        (["--steps", "0"], ["--steps must be positive, got 0"]),
        (["--steps", "1001"], ["--steps must be at most T=1000"]),
        (["--eta", "-0.5"], ["--eta must be between 0 and 1, got -0.5"]),
        (
            ["--backend", "tensorflow"],
            [
                "unknown backend 'tensorflow'; choose from ['openvino', 'ort', 'torch', 'triton', 'trt']"
            ],
        ),
        (
            ["--sampler", "plms"],
            ["unknown sampler 'plms'; choose from ['ddpm', 'ddim', 'dpm++2m', 'dpm++3m', 'ipndm']"],
        ),
        (["--spacing", "log"], ["unknown spacing 'log'; choose from ['linspace', 'leading'"]),
        (["--batch", "0"], ["--batch must be positive, got 0"]),
        (["--save-float"], ["--save-float needs --save npz"]),
        (["--provider", "cuda"], ["no CUDAExecutionProvider", "--allow-cpu-fallback"]),
        (["--variance", "learned"], ["unknown variance 'learned'"]),
    ],
)
def test_sample_bad_options(random_onnx, tmp_path, args, fragments):
    out = tmp_path / "out"
    assert_one_line_error(_sample(random_onnx, out, *args), *fragments)
    _assert_nothing_written(out)


def test_sample_missing_model(tmp_path):
    assert_one_line_error(_sample(tmp_path / "none.onnx", tmp_path / "out"), "no model file at")


def test_sample_unwritable_out(random_onnx, tmp_path):
    assert_one_line_error(
        _sample(random_onnx, _not_a_dir(tmp_path)), "cannot write to output folder"
    )


def test_sample_torch_backend_given_onnx(random_onnx, tmp_path):
    result = _sample(random_onnx, tmp_path / "out", "--backend", "torch")
    assert_one_line_error(result, "the torch backend reads a training checkpoint")


def test_resume_keeps_the_runs_data_root_despite_the_environment(tmp_path, tiny_data, monkeypatch):
    out = tmp_path / "run"
    assert run_cli("train", "--data-root", tiny_data, "--out", out, "--epochs", "1").exit_code == 0
    monkeypatch.setenv("DDPM_DEPLOY_DATA", str(tmp_path / "elsewhere"))  # holds no data
    result = run_cli("train", "--resume", out, "--epochs", "2")
    assert result.exit_code == 0, result.output
    assert (out / "loss.csv").read_text().count("\n") == 3


def test_sample_unshipped_model_name(tmp_path, monkeypatch):
    # an install without package data (a stripped wheel, say): the name cannot resolve to a file
    import ddpm_deploy.shipped as shipped

    monkeypatch.setattr(shipped.resources, "files", lambda _: tmp_path)
    result = run_cli("sample", "--model", "mnist", "--out", tmp_path / "out")
    assert_one_line_error(result, "this install ships no mnist model (looked for", "--model PATH")
    assert not (tmp_path / "out").exists()


# -- class-conditional sampling and evaluation ------------------------------------------------------
@pytest.mark.parametrize(
    "args,fragments",
    [
        (["--class", "hat"], ["unknown class 'hat'; choose a name from", "'Sneaker'"]),
        (["--class", "10"], ["--class 10 is out of range; this model has classes 0..9"]),
        (["--class", "3", "--guidance", "-1"], ["--guidance must be a finite number in [0, 100]"]),
    ],
)
def test_sample_bad_class_options(random_cond_onnx, tmp_path, args, fragments):
    out = tmp_path / "out"
    assert_one_line_error(_sample(random_cond_onnx, out, *args), *fragments)
    _assert_nothing_written(out)


def test_sample_class_on_an_unconditional_model(random_onnx, tmp_path):
    out = tmp_path / "out"
    result = _sample(random_onnx, out, "--class", "sneaker")
    assert_one_line_error(result, "--class sneaker: this fashion_mnist model is unconditional")
    _assert_nothing_written(out)


def test_evaluate_class_conditional_on_an_unconditional_model(random_onnx, tmp_path):
    result = run_cli(
        "evaluate", "--model", random_onnx, "--class", "all", "-n", "200",
        "--data-root", tmp_path,
    )  # fmt: skip
    assert_one_line_error(result, "--class all:", "model is unconditional")


def test_evaluate_negative_guidance(random_cond_onnx, tmp_path):
    result = run_cli(
        "evaluate", "--model", random_cond_onnx, "--class", "all", "--guidance", "-2",
        "--data-root", tmp_path,
    )  # fmt: skip
    assert_one_line_error(result, "--guidance must be a finite number in [0, 100]")


def test_evaluate_takes_every_class_or_none_not_one(random_cond_onnx, tmp_path):
    result = run_cli("evaluate", "--model", random_cond_onnx, "--class", "sneaker",
                     "--data-root", tmp_path)  # fmt: skip
    assert_one_line_error(result, "--class sneaker", "choose all (balanced), random or none")
