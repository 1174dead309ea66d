"""`ddpm-deploy distill`: a tiny teacher distils in seconds, and its student's own sampler travels
from the checkpoint's card through export to `sample`, `evaluate`'s settings and serve's rows."""

import json

import numpy as np
import pytest

from tests.helpers import assert_one_line_error, run_cli

# trains, exports, serves or drives a browser: outside the quick loop (`pytest -m "not slow"`)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def student(random_cond_checkpoint, tmp_path_factory):
    from ddpm_deploy.train.distill import DistillConfig, distill

    out = tmp_path_factory.mktemp("distill")
    cfg = DistillConfig(
        teacher=str(random_cond_checkpoint), out=str(out), steps=2, sub_steps=3, trajectories=40,
        epochs=2, batch_size=16, gen_batch=20, threads=1, progress=False,
    )  # fmt: skip
    result = distill(cfg)
    return out, result, cfg


def test_student_card_names_its_sampler_teacher_and_method(student, random_cond_checkpoint):
    from ddpm_deploy.train.checkpoint import read_checkpoint_card

    from ddpm_deploy.files import sha256_file

    out, result, _ = student
    card = read_checkpoint_card(out / "student.safetensors")
    assert card["sampler"] == {
        "sampler": "ddim",
        "timesteps": [999, 499],
        "clip": True,
        "guidance": 1.0,
    }
    d = card["distilled"]
    assert d["teacher_sha256"] == sha256_file(random_cond_checkpoint)
    assert d["method"] == "trajectory-ddim-x0clip" and d["guidance"] == 1.0
    assert d["teacher_sampler"]["calls"] == 6  # 3 sub-steps per student step
    assert [h["epoch"] for h in d["history"]] == [0, 1, 2]
    assert all(np.isfinite(h["model_rollout_rms"]) for h in d["history"])
    assert card["weights"] == "model"
    assert (out / "history.csv").read_text().startswith("epoch,train_loss")
    assert result["out"].endswith("student.safetensors")


def test_x0_target_makes_one_ddim_step_land_on_the_teachers_next_state():
    from ddpm_deploy.runtime.samplers import ddim_step
    from ddpm_deploy.train.distill import x0_targets

    from ddpm_deploy.schedule import Schedule

    sched = Schedule()
    rng = np.random.default_rng(0)
    ts = np.array([999, 600, 250])
    states = rng.normal(size=(3, 4, 1, 4, 4))
    states[:, -1] = np.clip(states[:, -1], -1, 1)  # the clean end
    x0 = x0_targets(states, ts, sched.alpha_bars)
    ends = [*ts.tolist(), -1]
    for j in range(len(ts)):
        ab = sched.alpha_bars[ends[j]]
        eps = (states[:, j] - np.sqrt(ab) * x0[:, j]) / np.sqrt(1 - ab)  # the eps that predicts x0~
        landed = ddim_step(states[:, j], eps, ends[j], ends[j + 1], sched, None, clip=False)
        np.testing.assert_allclose(landed, states[:, j + 1], atol=1e-9)


def test_training_rollout_is_the_runtime_sampler(student):
    """The student is trained and measured with the sampler the runtime runs: same images."""
    import torch
    from ddpm_deploy.runtime.backends import load_denoiser
    from ddpm_deploy.runtime.guidance import Guided
    from ddpm_deploy.runtime.sampler_settings import SamplerSettings
    from ddpm_deploy.runtime.samplers import sample
    from ddpm_deploy.train.distill import Distiller

    out, _, cfg = student
    den = load_denoiser("torch", out / "student.safetensors")
    settings = SamplerSettings().for_model(den.card)
    rng = np.random.default_rng(1)
    x_T = rng.standard_normal((5, 1, 28, 28)).astype(np.float32)
    y = np.arange(5, dtype=np.int64)

    class Fixed:  # hands the sampler this x_T
        def standard_normal(self, shape, dtype):
            return x_T.astype(dtype)

    runtime = sample(Guided(den, y, 1.0), den.schedule, 5, Fixed(), **settings.sampler_kwargs(),
                     shape=den.image_shape)  # fmt: skip
    distiller = Distiller(cfg)
    with torch.no_grad():
        trained = distiller.rollout(den.model, x_T, y)
    np.testing.assert_allclose(trained, runtime, atol=2e-5)


def test_trajectories_are_cached_and_reused(student, random_cond_checkpoint):
    from ddpm_deploy.train.distill import Distiller

    out, _, cfg = student
    chunks = sorted((out / "trajectories").rglob("chunk-*.npy"))
    assert len(chunks) == 2  # 40 trajectories in chunks of 20
    first = np.load(chunks[0])
    again = Distiller(cfg).trajectories()  # every chunk from the cache
    np.testing.assert_array_equal(again["states"][:20], first)
    assert again["cached_chunks"] == 2


@pytest.fixture(scope="module")
def student_onnx(student, tmp_path_factory):
    from ddpm_deploy.export.onnx_export import export_onnx

    out = tmp_path_factory.mktemp("student_onnx") / "student.onnx"
    export_onnx(student[0] / "student.safetensors", out)  # with the parity check
    return out


def test_export_and_sample_follow_the_students_own_sampler(student_onnx, tmp_path):
    from ddpm_deploy.onnx_model import read_card

    assert read_card(student_onnx)["sampler"]["timesteps"] == [999, 499]
    result = run_cli("sample", "--model", str(student_onnx), "-n", "4", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    run = json.loads((tmp_path / "run.json").read_text())
    assert (run["sampler"], run["steps"], run["timesteps"], run["guidance"]) == (
        "ddim",
        2,
        [999, 499],
        1.0,
    )


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--sampler", "dpm++2m"], ["--sampler dpm++2m", "distilled for its own sampler", "ddim at t = [999, 499]"]),
        (["--steps", "20"], ["--steps 20", "drop the sampler options"]),
        (["--spacing", "trailing"], ["--spacing trailing"]),
        (["--guidance", "2"], ["--guidance 2.0", "baked in", "drop --guidance"]),
    ],
)  # fmt: skip
def test_a_distilled_model_refuses_other_samplers_in_one_line(
    student_onnx, tmp_path, args, fragments
):
    result = run_cli(
        "sample", "--model", str(student_onnx), "-n", "2", "--out", str(tmp_path), *args
    )
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "samples.png").exists()


def test_serve_rows_run_the_students_own_sampler(student_onnx):
    from ddpm_deploy.runtime.backends import load_denoiser
    from ddpm_deploy.serve.rows import SampleService

    service = SampleService(load_denoiser("ort", student_onnx))
    settings, w = service._settings({}, 0)
    assert (settings.sampler, settings.timesteps, w) == ("ddim", (999, 499), 1.0)


def test_a_student_is_not_a_teacher(student, tmp_path):
    result = run_cli("distill", str(student[0] / "student.safetensors"), "-o", str(tmp_path))
    assert_one_line_error(result, "itself a distilled student")


@pytest.mark.parametrize(
    "args, fragment",
    [(["--steps", "0"], "--steps must be positive"), (["--trajectories", "5"], "at least 20"),
     (["--guidance", "-1"], "--guidance"), (["--ema", "1.5"], "--ema")],
)  # fmt: skip
def test_bad_distill_options_are_one_line(random_cond_checkpoint, tmp_path, args, fragment):
    result = run_cli("distill", str(random_cond_checkpoint), "-o", str(tmp_path / "o"), *args)
    assert_one_line_error(result, fragment)


def test_missing_teacher_is_one_line(tmp_path):
    result = run_cli("distill", str(tmp_path / "none.safetensors"), "-o", str(tmp_path / "o"))
    assert_one_line_error(result, "no checkpoint at")


def test_a_folder_of_another_teachers_run_is_refused_unless_forced(student, random_checkpoint, tmp_path):  # fmt: skip
    """Re-running into a folder made for another teacher would mix two runs' files."""
    from ddpm_deploy.train.distill import DistillConfig, Distiller

    out, _, cfg = student
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    result = run_cli("distill", str(random_checkpoint), "-o", str(out), "--steps", "2")
    assert_one_line_error(result, "holds a distillation of teacher sha256", "--force")
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    # the same teacher resumes in its own folder; --force clears another's run first
    Distiller(cfg)
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "card.json").write_text((out / "card.json").read_text())
    forced = Distiller(DistillConfig(teacher=str(random_checkpoint), out=str(copy), force=True))
    assert not (forced.out / "card.json").exists()
    assert json.loads((copy / "distill.json").read_text())["teacher_sha256"] == forced.teacher_sha


def test_refused_runs_write_nothing(random_cond_checkpoint, random_onnx, tmp_path):
    out = tmp_path / "never"
    for args in (["--seed", "-1"], ["--steps", "0"], ["--lr", "nan"]):
        assert_one_line_error(run_cli("distill", str(random_cond_checkpoint), "-o", str(out), *args))  # fmt: skip
    assert_one_line_error(run_cli("distill", str(random_onnx), "-o", str(out)))
    assert not out.exists()
    teacher_dir = random_cond_checkpoint.parent
    assert_one_line_error(run_cli("distill", str(random_cond_checkpoint), "-o", str(teacher_dir)), "would overwrite the input")  # fmt: skip


def test_the_trajectory_cache_name_is_bounded():
    from ddpm_deploy.train.distill import DistillConfig
    from ddpm_deploy.train.trajectories import cache_key

    ts = np.arange(999, 0, -15)[:64]
    key = cache_key(DistillConfig(teacher="t", out="o", steps=64), "ab" * 32, ts)
    assert len(key) == 24 and key != cache_key(DistillConfig(teacher="t", out="o"), "ab" * 32, ts[:4])  # fmt: skip
