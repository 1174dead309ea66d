"""`import-diffusers` and `export-diffusers` on bad input: one `Error:` line naming the field, a
non-zero exit, and nothing written. Each folder is a copy of one tiny save_pretrained folder with
one config field changed, so these tests export nothing and run in seconds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import assert_one_line_error, edited, run_cli

pytest.importorskip("diffusers")


SCHEDULER = "scheduler/scheduler_config.json"
REFUSALS = [
    (SCHEDULER, {"prediction_type": "v_prediction"}, "prediction_type 'v_prediction'"),
    (SCHEDULER, {"prediction_type": "sample"}, "prediction_type 'sample'"),
    (SCHEDULER, {"beta_schedule": "scaled_linear"}, "beta_schedule 'scaled_linear'"),
    (SCHEDULER, {"beta_schedule": "sigmoid"}, "beta_schedule 'sigmoid'"),
    (SCHEDULER, {"trained_betas": [0.001] * 1000}, "trained_betas"),
    (SCHEDULER, {"thresholding": True}, "thresholding True"),
    (SCHEDULER, {"rescale_betas_zero_snr": True}, "rescale_betas_zero_snr True"),
    (SCHEDULER, {"variance_type": "learned_range"}, "variance_type 'learned_range'"),
    (SCHEDULER, {"clip_sample_range": 2.0}, "clip_sample_range 2.0"),
    (SCHEDULER, {"_class_name": "EulerDiscreteScheduler"}, "_class_name 'EulerDiscreteScheduler'"),
    ("unet/config.json", {"_class_name": "UNet2DConditionModel"}, "UNet2DConditionModel"),
    ("unet/config.json", {"out_channels": 2}, "out_channels 2"),
    ("unet/config.json", {"time_embedding_type": "fourier"}, "time_embedding_type 'fourier'"),
    ("unet/config.json", {"class_embed_type": "timestep"}, "class_embed_type 'timestep'"),
    ("unet/config.json", {"sample_size": "big"}, "sample_size 'big'"),
    ("model_index.json", {"_class_name": "StableDiffusionPipeline"}, "StableDiffusionPipeline"),
    # a field of the wrong JSON type is one line naming it, not a TypeError
    (SCHEDULER, {"num_train_timesteps": "abc"}, "num_train_timesteps 'abc' must be integer"),
    (SCHEDULER, {"beta_end": "x"}, "beta_end 'x' must be integer or number"),
    (SCHEDULER, {"clip_sample": "yes"}, "clip_sample 'yes' must be true/false"),
    ("unet/config.json", {"layers_per_block": "two"}, "layers_per_block 'two' must be integer"),
    ("unet/config.json", {"in_channels": 1.5}, "in_channels 1.5 must be integer"),
]


@pytest.mark.parametrize(("config", "changes", "fragment"), REFUSALS, ids=[r[2] for r in REFUSALS])
def test_configs_the_runtime_cannot_honour_are_one_line(
    good_folder, tmp_path, config, changes, fragment
):
    folder = edited(good_folder, tmp_path, config, **changes)
    result = run_cli("import-diffusers", folder, "-o", tmp_path / "m.onnx")
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "m.onnx").exists()


def test_pickled_weights_are_refused_unopened(good_folder, tmp_path):
    folder = tmp_path / "folder"
    shutil.copytree(good_folder, folder)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    # not a pickle at all: were it opened, the error would differ
    weights.with_suffix(".bin").write_bytes(b"never unpickled")
    weights.unlink()
    result = run_cli("import-diffusers", folder, "-o", tmp_path / "m.onnx")
    assert_one_line_error(result, "diffusion_pytorch_model.bin", "never unpickles")
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda f: f / "missing", "no folder"),
        (lambda f: f.mkdir() or f, "neither model_index.json"),
    ],
)
def test_not_a_diffusers_folder(tmp_path, make, fragment):
    result = run_cli("import-diffusers", make(tmp_path / "x"), "-o", tmp_path / "m.onnx")
    assert_one_line_error(result, fragment)


def test_weights_that_do_not_fit_the_config(good_folder, tmp_path):
    folder = edited(good_folder, tmp_path, "unet/config.json", block_out_channels=[8, 8])
    result = run_cli("import-diffusers", folder, "-o", tmp_path / "m.onnx")
    assert_one_line_error(result, "does not fit", "size mismatch")
    assert not (tmp_path / "m.onnx").exists()


def test_import_output_must_be_onnx_and_a_checkpoint_safetensors(good_folder, tmp_path):
    result = run_cli("import-diffusers", good_folder, "-o", tmp_path / "m.pt")
    assert_one_line_error(result, "must end in .onnx")
    result = run_cli(
        "import-diffusers", good_folder, "-o", tmp_path / "m.onnx", "--checkpoint", tmp_path / "c"
    )
    assert_one_line_error(result, "must end in .safetensors")
    result = run_cli("import-diffusers", good_folder, "-o", tmp_path / "m.onnx", "--last-class-is-null")  # fmt: skip
    assert_one_line_error(result, "--last-class-is-null", "unconditional")
    assert not list(tmp_path.iterdir())


def test_export_refuses_a_used_folder_and_a_schedule_diffusers_cannot_name(
    random_checkpoint, tmp_path
):
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    result = run_cli("export-diffusers", random_checkpoint, used)
    assert_one_line_error(result, "not an empty folder")
    assert [p.name for p in used.iterdir()] == ["keep.txt"]

    from ddpm_deploy.train.checkpoint import load_model, save_checkpoint

    model, card = load_model(random_checkpoint)
    for changes, fragment in [
        ({"schedule": {"name": "cosine", "T": 1000, "s": 0.01, "max_beta": 0.999}}, "no diffusers beta_schedule"),
        ({"sampler": {"sampler": "ddim", "timesteps": [999, 499], "clip": True}}, "distilled"),
    ]:  # fmt: skip
        odd = tmp_path / "odd.safetensors"
        save_checkpoint(odd, {**card, **changes}, model.state_dict())
        result = run_cli("export-diffusers", odd, tmp_path / "out")
        assert_one_line_error(result, fragment)
        assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.safetensors", "used"]


def test_a_ddim_scheduler_maps_onto_the_runtimes_ddim(good_folder, tmp_path):
    from ddpm_deploy.export.diffusers_config import project_schedule, read_folder, sampler_facts

    folder = edited(good_folder, tmp_path, SCHEDULER, _class_name="DDIMScheduler")
    cfg = json.loads((folder / SCHEDULER).read_text())
    del cfg["variance_type"]  # DDIMScheduler has none
    (folder / SCHEDULER).write_text(json.dumps(cfg))
    found = read_folder(folder)
    assert project_schedule(found.scheduler).to_dict()["name"] == "linear"
    assert sampler_facts(found.scheduler)["runtime_flags"] == "--sampler ddim --eta 0 --clip"


def test_an_imported_model_cannot_claim_a_folder_dataset(good_folder, tmp_path):
    """evaluate re-reads a folder dataset from the card's 'data' section: an import has none."""
    result = run_cli("import-diffusers", good_folder, "-o", tmp_path / "m.onnx", "--dataset", "folder")  # fmt: skip
    assert_one_line_error(result, "--dataset folder", "fashion_mnist or mnist")
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def ddpm_deploy_folder(random_cond_checkpoint, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dd") / "pipeline"
    assert run_cli("export-diffusers", random_cond_checkpoint, out).exit_code == 0
    return out


CARD_REFUSALS = [
    (
        {"image": {"shape": [1, 32, 32], "range": [-1, 1]}},
        "differs from the architecture's [1, 28, 28]",
    ),  # fmt: skip
    ({"image": {"shape": [7, 28, 28], "range": [-1, 1]}}, "image.shape[0]: 7 is not one of [1, 3]"),
    ({"sampler": {"sampler": "ddim", "timesteps": [999, 10, 500]}}, "strictly descending integers"),
    (
        {"sampler": {"sampler": "ddim", "timesteps": [5000, 10, -3]}},
        "sampler.timesteps[2]: -3 must be >= 0",
    ),  # fmt: skip
    (
        {"sampler": {"sampler": "evil", "timesteps": [999, 0]}},
        "sampler.sampler: 'evil' is not one of",
    ),
    (
        {"sampler": {"sampler": "ddim", "timesteps": [999, 0], "guidance": 1e300}},
        "sampler.guidance: 1e+300 must be <= 100.0",
    ),  # fmt: skip
    ({"classes": ["a", "b"]}, "10 classes need 10 class names"),
    (
        {"gaussian": {"format": "ddpm-deploy-gaussian/1", "groups": 2}},
        "gaussian: 'rank' is missing",
    ),  # fmt: skip
]


@pytest.mark.parametrize(("changes", "fragment"), CARD_REFUSALS, ids=[r[1] for r in CARD_REFUSALS])
def test_an_embedded_card_is_checked_like_an_exported_one(ddpm_deploy_folder, tmp_path, changes, fragment):  # fmt: skip
    config = ddpm_deploy_folder / "unet" / "config.json"
    cfg = json.loads(config.read_text())
    folder = edited(ddpm_deploy_folder, tmp_path, "unet/config.json", card={**cfg["card"], **changes})  # fmt: skip
    result = run_cli("import-diffusers", folder, "-o", tmp_path / "m.onnx")
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "m.onnx").exists()
