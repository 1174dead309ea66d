"""`ddpm-deploy distill` (SFD): a tiny teacher distils in seconds; the student learns on its own
states, resumes, and its own sampler (analytic steps included) travels from the checkpoint's card
through export to `sample`, `evaluate`'s settings and serve's rows."""

import json

import numpy as np
import pytest

from tests.helpers import assert_one_line_error, run_cli, write_idx

# trains, exports, serves or drives a browser: outside the quick loop (`pytest -m "not slow"`)
pytestmark = pytest.mark.slow


def small(teacher, out, data, **changes):
    from ddpm_deploy.train.distill import DistillConfig

    settings = dict(
        teacher=str(teacher),
        out=str(out),
        steps=2,
        analytic=1,
        data_root=str(data),
        rank=4,
        sub_steps=3,
        images=64,
        batch_size=16,
        held_out=8,
        save_every=2,
        threads=1,
        progress=False,
    )
    return DistillConfig(**{**settings, **changes})


@pytest.fixture(scope="module")
def student(random_cond_checkpoint, tmp_path_factory):
    from ddpm_deploy.train.distill import distill

    root = tmp_path_factory.mktemp("distill")
    data = write_idx(root / "data", n=200)
    cfg = small(random_cond_checkpoint, root / "out", data)
    result = distill(cfg)
    return root / "out", result, cfg


def test_student_card_names_its_sampler_teacher_and_method(student, random_cond_checkpoint):
    from ddpm_deploy.train.checkpoint import read_checkpoint_card

    from ddpm_deploy.files import sha256_file

    out, result, _ = student
    card = read_checkpoint_card(out / "student.safetensors")
    assert card["sampler"] == {
        "sampler": "ddim",
        "timesteps": card["sampler"]["timesteps"],
        "clip": True,
        "analytic": 1,
        "guidance": 1.0,
    }
    assert len(card["sampler"]["timesteps"]) == 3 and card["sampler"]["timesteps"][0] == 999
    assert card["gaussian"]["rank"] == 4  # the statistics its analytic step needs travel with it
    d = card["distilled"]
    assert d["teacher_sha256"] == sha256_file(random_cond_checkpoint)
    assert d["method"] == "sfd-ddim-x0clip-l1" and d["guidance"] == 1.0
    assert d["teacher_sampler"] == {"sampler": "dpm++2m", "clip": True, "sub_steps": 3}
    assert [h["images"] for h in d["history"]] == [0, 32, 64] and d["images_seen"] == 64
    assert all(np.isfinite(h["model_rollout_rms"]) for h in d["history"])
    assert card["weights"] == "model"
    assert (out / "history.csv").read_text().startswith("images,train_loss")
    assert result["out"].endswith("student.safetensors")


def test_x0_target_makes_one_ddim_step_land_on_the_teachers_next_state():
    import torch
    from ddpm_deploy.train.student import ddim_to, x0_target

    from ddpm_deploy.schedule import Schedule

    sqrt_ab = torch.tensor(np.sqrt(Schedule().alpha_bars), dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    for t, s in ((999, 600), (600, 250), (250, -1)):
        x, x_next = torch.randn(2, 3, 1, 4, 4, generator=gen, dtype=torch.float64)
        a_t, a_s = sqrt_ab[t], (sqrt_ab[s] if s >= 0 else torch.tensor(1.0, dtype=torch.float64))
        landed = ddim_to(x, x0_target(x, x_next, a_t, a_s), a_t, a_s)
        torch.testing.assert_close(landed, x_next, atol=1e-9, rtol=0)


def test_training_rollout_is_the_runtime_sampler(student):
    """The student is trained and measured with the sampler the runtime runs, analytic step
    included: the same images from the same noise."""
    from ddpm_deploy.runtime.backends import load_denoiser
    from ddpm_deploy.runtime.guidance import Guided
    from ddpm_deploy.runtime.noise import PerImageNoise
    from ddpm_deploy.runtime.sampler_settings import SamplerSettings
    from ddpm_deploy.runtime.samplers import sample
    from ddpm_deploy.train.distill import Distiller
    from ddpm_deploy.train.teacher import analytic_start

    out, _, cfg = student
    den = load_denoiser("torch", out / "student.safetensors")
    settings = SamplerSettings().for_model(den.card)
    y = np.arange(5, dtype=np.int64)
    guided = Guided(den, y, 1.0)
    runtime = sample(guided, den.schedule, 5, PerImageNoise(3, 0, 5), **settings.sampler_kwargs())
    x_T = PerImageNoise(3, 0, 5).standard_normal((5, *den.image_shape), np.float32)
    distiller = Distiller(small(cfg.teacher, out, cfg.data_root))  # the run's grid and device
    grid = distiller.grid
    x = analytic_start(guided, den.schedule, x_T, grid, 1)
    trained = rollout_of(distiller, den.model, x, y)
    np.testing.assert_allclose(trained, runtime, atol=2e-5)


def rollout_of(distiller, model, x, y):
    from ddpm_deploy.train.student import rollout

    return rollout(model, x, y, distiller.grid[1:], distiller.sqrt_ab, distiller.device)


def test_the_teachers_states_are_its_own_sampler_through_the_student_grid(student):
    """With one DDIM sub-step per student step the teacher's states are the untrained student's
    rollout (they start equal): targets sit at the student's timesteps and the clean end."""
    from ddpm_deploy.train.distill import Distiller

    out, _, cfg = student
    one = small(
        cfg.teacher, out.parent / "ddim1", cfg.data_root, sub_steps=1, teacher_sampler="ddim"
    )
    distiller = Distiller(one)
    x, y, states = distiller.open_teacher().batch(7, 0, 4)
    assert states.shape == (4, 2, 1, 28, 28)
    ts = distiller.grid[1:]
    first = rollout_of_grid(distiller, distiller.model, x, y, ts[:1], ts[1])
    # float32 rounding of the same step in two programs, amplified by the clipped x0's division by
    # sqrt(alpha_bar) at the noisy end: 2.1e-5 on 1 of 3,136 values with the shared generator's x_T
    # (below 2e-5 with the previous one); a changed step moves x0 by over 1e-3
    # (tests/export/test_sampler_graph.py::test_comparison_sees_a_changed_step)
    np.testing.assert_allclose(first, states[:, 0], atol=5e-5)  # the state at the 2nd timestep
    np.testing.assert_allclose(
        rollout_of(distiller, distiller.model, x, y), states[:, -1], atol=5e-5
    )


def rollout_of_grid(distiller, model, x, y, ts, end):
    """One DDIM step with clipping from ts[0] to ``end`` (the runtime's step, in numpy)."""
    from ddpm_deploy.runtime.backends import load_denoiser
    from ddpm_deploy.runtime.guidance import Guided
    from ddpm_deploy.runtime.samplers import sample

    den = load_denoiser("ort", distiller.out / "teacher.onnx")
    kept = {}
    sample(
        Guided(den, y, 1.0),
        den.schedule,
        len(x),
        None,
        sampler="ddim",
        timesteps=[int(ts[0]), int(end)],
        start=x,
        callback=lambda i, t, z: kept.setdefault(i, z),
    )
    return kept[0]


def test_with_sub_steps_every_target_is_the_teachers_state_at_the_next_student_timestep(student):
    from ddpm_deploy.runtime.guidance import Guided
    from ddpm_deploy.runtime.samplers import sample
    from ddpm_deploy.train.distill import Distiller

    out, _, cfg = student
    distiller = Distiller(small(cfg.teacher, out.parent / "sub3", cfg.data_root))
    teacher = distiller.open_teacher()
    x, y, states = teacher.batch(7, 0, 3)
    seen = {}
    sample(
        Guided(teacher.den, y, 1.0),
        teacher.den.schedule,
        3,
        None,
        sampler="dpm++2m",
        timesteps=teacher.tgrid,
        start=x,
        callback=lambda i, t, z: seen.setdefault(t, z),
    )
    later = distiller.grid[2:]  # the student's timesteps after its first call
    for j, t in enumerate(later):
        previous = teacher.tgrid[list(teacher.tgrid).index(t) - 1]
        np.testing.assert_array_equal(states[:, j], seen[int(previous)])  # the step landing on t
    np.testing.assert_array_equal(states[:, -1], seen[int(teacher.tgrid[-1])])


def test_a_short_segment_never_repeats_a_timestep():
    from ddpm_deploy.train.teacher import teacher_grid

    for ts, sub in (([5, 4, 3], 4), ([1, 0], 4), ([999, 880, 434, 77], 30)):
        grid, marks = teacher_grid(np.array(ts), sub)
        assert (np.diff(grid) < 0).all() and grid.min() >= 0, (ts, grid)
        assert grid[marks].tolist() == ts


def test_an_interrupted_run_resumes_to_the_same_student(student, tmp_path, monkeypatch):
    """Stopped after its first save and rerun, a run ends with the weights of one that never
    stopped: the weights, optimizer state and data position all come back."""
    from ddpm_deploy.train.checkpoint import read_checkpoint
    from ddpm_deploy.train.distill import Distiller, distill

    out, _, cfg = student
    distill(small(cfg.teacher, tmp_path / "whole", cfg.data_root))
    real_save = Distiller.save

    def save_then_stop(self):
        real_save(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(Distiller, "save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        distill(small(cfg.teacher, tmp_path / "stopped", cfg.data_root))
    monkeypatch.setattr(Distiller, "save", real_save)
    distill(small(cfg.teacher, tmp_path / "stopped", cfg.data_root))
    whole, _ = read_checkpoint(tmp_path / "whole" / "student.safetensors")
    resumed, _ = read_checkpoint(tmp_path / "stopped" / "student.safetensors")
    assert whole.keys() == resumed.keys()
    for k in whole:
        torch_close(whole[k], resumed[k])


def torch_close(a, b):
    import torch

    torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("w, fragment", [("0", "always asked for a class"), ("2.5", None)])
def test_guidance_a_student_cannot_bake_in_is_one_line(
    random_cond_checkpoint, random_checkpoint, tmp_path, w, fragment
):
    if fragment:
        result = run_cli(
            "distill",
            str(random_cond_checkpoint),
            "-o",
            str(tmp_path / "o"),
            "--analytic",
            "0",
            "--guidance",
            w,
        )
    else:
        result = run_cli(
            "distill",
            str(random_checkpoint),
            "-o",
            str(tmp_path / "o"),
            "--analytic",
            "0",
            "--guidance",
            w,
        )
        fragment = "is unconditional"
    assert_one_line_error(result, f"--guidance {float(w)}", fragment)
    assert not (tmp_path / "o").exists()


def test_sample_can_start_from_a_given_state():
    """`start` continues a run: a DDIM run split in two equals the whole run."""
    from ddpm_deploy.runtime.samplers import sample

    from ddpm_deploy.schedule import Schedule

    sched = Schedule()

    def den(x, t):
        return 0.3 * x + 0.01 * t[:, None, None, None] / 1000

    grid = np.array([999, 700, 400, 100])
    kept = {}
    whole = sample(
        den,
        sched,
        3,
        np.random.default_rng(0),
        sampler="ddim",
        timesteps=grid,
        callback=lambda i, t, x: kept.setdefault(i, x.copy()),
    )
    rest = sample(den, sched, 3, None, sampler="ddim", timesteps=grid[2:], start=kept[1])
    np.testing.assert_allclose(rest, whole, atol=1e-6)


def test_a_stopped_run_resumes_and_other_settings_are_refused(student, tmp_path):
    from ddpm_deploy.train.distill import distill

    out, _, cfg = student
    folder = tmp_path / "run"
    distill(small(cfg.teacher, folder, cfg.data_root, images=32))
    first = json.loads((folder / "card.json").read_text())["distilled"]["history"]
    distill(small(cfg.teacher, folder, cfg.data_root, images=64))  # goes on from 32
    history = json.loads((folder / "card.json").read_text())["distilled"]["history"]
    assert history[: len(first)] == first and [h["images"] for h in history] == [0, 32, 64]
    result = run_cli(
        "distill",
        cfg.teacher,
        "-o",
        str(folder),
        "--data-root",
        cfg.data_root,
        "--rank",
        "4",
        "--lr",
        "1e-3",
    )
    assert_one_line_error(result, "other settings", "--lr", "--force")
    distill(small(cfg.teacher, folder, cfg.data_root, images=32, force=True))  # starts over
    restarted = json.loads((folder / "card.json").read_text())["distilled"]["history"]
    assert [h["images"] for h in restarted] == [0, 32]


def test_analytic_steps_without_data_are_one_line(random_cond_checkpoint, tmp_path):
    result = run_cli(
        "distill",
        str(random_cond_checkpoint),
        "-o",
        str(tmp_path / "o"),
        "--data-root",
        str(tmp_path / "nothing"),
    )
    assert_one_line_error(result)
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def student_onnx(student, tmp_path_factory):
    from ddpm_deploy.export.onnx_export import export_onnx

    out = tmp_path_factory.mktemp("student_onnx") / "student.onnx"
    export_onnx(student[0] / "student.safetensors", out)  # with the parity check
    return out


def test_export_and_sample_follow_the_students_own_sampler(student_onnx, tmp_path):
    from ddpm_deploy.onnx_model import read_card

    own = read_card(student_onnx)["sampler"]
    assert own["analytic"] == 1 and "gaussian" in read_card(student_onnx)
    result = run_cli("sample", "--model", str(student_onnx), "-n", "4", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    run = json.loads((tmp_path / "run.json").read_text())
    assert (run["sampler"], run["timesteps"], run["guidance"]) == ("ddim", own["timesteps"], 1.0)
    assert run["network_calls"] == 2


@pytest.mark.parametrize(
    "args, fragments",
    [
        (
            ["--sampler", "dpm++2m"],
            ["--sampler dpm++2m", "distilled for its own sampler", "ddim at t = [999"],
        ),
        (["--steps", "20"], ["--steps 20", "drop the sampler options"]),
        (["--spacing", "trailing"], ["--spacing trailing"]),
        (["--guidance", "2"], ["--guidance 2.0", "baked in", "drop --guidance"]),
    ],
)
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
    assert (settings.sampler, settings.analytic, len(settings.timesteps), w) == ("ddim", 1, 3, 1.0)


def test_a_student_is_not_a_teacher(student, tmp_path):
    result = run_cli("distill", str(student[0] / "student.safetensors"), "-o", str(tmp_path))
    assert_one_line_error(result, "itself a distilled student")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--steps", "0"], "--steps must be positive"),
        (["--images", "0"], "--images must be positive"),
        (["--analytic", "-1"], "--analytic"),
        (["--teacher-sampler", "ddpm"], "deterministic"),
        (["--guidance", "-1"], "--guidance"),
        (["--ema", "1.5"], "--ema"),
    ],
)
def test_bad_distill_options_are_one_line(random_cond_checkpoint, tmp_path, args, fragment):
    result = run_cli("distill", str(random_cond_checkpoint), "-o", str(tmp_path / "o"), *args)
    assert_one_line_error(result, fragment)


def test_missing_teacher_is_one_line(tmp_path):
    result = run_cli("distill", str(tmp_path / "none.safetensors"), "-o", str(tmp_path / "o"))
    assert_one_line_error(result, "no checkpoint at")


def test_a_folder_of_another_teachers_run_is_refused_unless_forced(
    student, random_checkpoint, tmp_path
):
    """Re-running into a folder made for another teacher would mix two runs' files."""
    from ddpm_deploy.train.distill import Distiller

    out, _, cfg = student
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    result = run_cli("distill", str(random_checkpoint), "-o", str(out), "--analytic", "0")
    assert_one_line_error(result, "holds a distillation of teacher sha256", "--force")
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    # the same teacher resumes in its own folder; --force clears another's run first
    again = Distiller(cfg)
    again.resume()
    assert (
        again.done == 64
        and again.history == json.loads((out / "card.json").read_text())["distilled"]["history"]
    )
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "card.json").write_text((out / "card.json").read_text())
    forced = Distiller(small(random_checkpoint, copy, cfg.data_root, force=True))
    assert not (forced.out / "card.json").exists()
    assert json.loads((copy / "distill.json").read_text())["teacher_sha256"] == forced.teacher_sha


def test_refused_runs_write_nothing(random_cond_checkpoint, random_onnx, tmp_path):
    out = tmp_path / "never"
    for args in (["--seed", "-1"], ["--steps", "0"], ["--lr", "nan"]):
        assert_one_line_error(
            run_cli("distill", str(random_cond_checkpoint), "-o", str(out), *args)
        )
    assert_one_line_error(run_cli("distill", str(random_onnx), "-o", str(out)))
    assert not out.exists()
    teacher_dir = random_cond_checkpoint.parent
    assert_one_line_error(
        run_cli("distill", str(random_cond_checkpoint), "-o", str(teacher_dir)),
        "would overwrite the input",
    )
