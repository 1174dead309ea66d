"""learn-sampler on a tiny random model in seconds: the learned parameters move, the graph does
not, the card carries the spec and the statistics, and `sample` follows them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import assert_one_line_error, run_cli, tiny_shaped_model, write_idx

CLASSES = [str(i) for i in range(10)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("learn")
    _, onnx_path, _ = tiny_shaped_model(folder, 1, 28, "mnist", CLASSES)
    data = write_idx(folder / "data", n=200)
    return onnx_path, data


def learn(tiny, out, *extra, json_and_fit: bool = True):
    """learn-sampler on the tiny model, small enough for seconds; --json --learn unless told."""
    onnx_path, data = tiny
    small = ["--calls", "2", "--rank", "4", "--teacher", "ddim:10:linspace", "--images", "8"]
    fit = ["--evals", "12", "--json", "--learn"] if json_and_fit else []
    return run_cli("learn-sampler", onnx_path, "-o", out, "--data-root", data, *small, *fit, *extra)


def test_learns_the_sampler_and_leaves_the_graph_alone(tiny, tmp_path):
    import onnx

    from ddpm_deploy.card import CARD_KEY

    out = tmp_path / "learned.onnx"
    result = learn(tiny, out)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    before, after = onnx.load(str(tiny[0])), onnx.load(str(out))
    assert before.graph.SerializeToString() == after.graph.SerializeToString()

    free, learned = report["training_free"], report["learned"]
    assert learned["loss"] <= free["loss"]  # the optimizer starts at the training-free grid
    moved = learned["timesteps"] != free["timesteps"] or any(m != 0 for m in learned["mix"])
    assert moved, report
    assert len(free["timesteps"]) == 2 + free["analytic"]
    assert [a["analytic"] for a in report["analytic_tried"]] == [0, 1, 2, 3, 4]

    card = json.loads({p.key: p.value for p in after.metadata_props}[CARD_KEY])
    assert card["sampler"] == report["chosen"] and card["gaussian"]["rank"] == 4
    assert card["sampler"].get("analytic", 0) == free["analytic"]


def test_sample_follows_the_learned_spec_and_options_replace_it(tiny, tmp_path):
    from ddpm_deploy.runtime.backends import load_denoiser
    from ddpm_deploy.runtime.guidance import Guided
    from ddpm_deploy.runtime.noise import PerImageNoise
    from ddpm_deploy.runtime.samplers import sample

    out = tmp_path / "learned.onnx"
    assert learn(tiny, out).exit_code == 0
    den = load_denoiser("ort", out)
    spec = den.card["sampler"]
    run = run_cli(
        "sample",
        "--model",
        out,
        "-n",
        "3",
        "--class",
        "4",
        "--out",
        tmp_path / "s",
        "--save",
        "npz",
        "--save-float",
    )
    assert run.exit_code == 0, run.output
    record = json.loads((tmp_path / "s" / "run.json").read_text())
    assert record["timesteps"] == spec["timesteps"]
    assert record["analytic"] == spec.get("analytic", 0)
    assert record["network_calls"] == 2  # --calls
    want = sample(
        Guided(den, np.full(3, 4), 1.0),
        den.schedule,
        3,
        PerImageNoise(0, 0, 3),
        sampler="dpm++2m",
        timesteps=spec["timesteps"],
        analytic=spec.get("analytic", 0),
        mix=spec.get("mix"),
    )
    np.testing.assert_array_equal(np.load(tmp_path / "s" / "samples.npz")["samples"], want)
    other = run_cli("sample", "--model", out, "-n", "2", "--steps", "3", "--out", tmp_path / "o")
    assert other.exit_code == 0, other.output
    record = json.loads((tmp_path / "o" / "run.json").read_text())
    assert record["steps"] == 3 and record["analytic"] == 0


def test_refuses_to_overwrite_its_input(tiny, tmp_path):
    onnx_path, data = tiny
    before = onnx_path.read_bytes()
    result = learn(tiny, onnx_path)
    assert_one_line_error(result, "would overwrite the input")
    assert onnx_path.read_bytes() == before


def test_bad_options_are_one_line(tiny, tmp_path):
    assert_one_line_error(learn(tiny, tmp_path / "x.txt"), "must end in .onnx")
    assert_one_line_error(learn(tiny, tmp_path / "x.onnx", "--guidance", "inf"), "--guidance")
    assert_one_line_error(learn(tiny, tmp_path / "x.onnx", "--seed", "-1"), "--seed")
    assert_one_line_error(
        learn(tiny, tmp_path / "x.onnx", "--teacher", "ddpm:50"), "--teacher 'ddpm:50'"
    )
    assert_one_line_error(
        learn(tiny, tmp_path / "x.onnx", "--teacher", "ddim:5000"), "SAMPLER:STEPS"
    )
    assert not (tmp_path / "x.onnx").exists()


def test_serve_rows_follow_the_learned_spec(tiny, tmp_path):
    """serve's ddpm_sample rows: the model's learned spec by default (images equal `sample`'s),
    and an explicit analytic count per row."""
    from ddpm_deploy.runtime.backends import load_denoiser
    from ddpm_deploy.serve.rows import SampleService

    out = tmp_path / "learned.onnx"
    assert learn(tiny, out).exit_code == 0
    service = SampleService(load_denoiser("ort", out))
    seeds = np.zeros((3, 1), np.int64)
    own, explicit = service.run(
        [
            {"seed": seeds, "index": np.arange(3).reshape(-1, 1)},
            {
                "seed": seeds[:1],
                "index": np.zeros((1, 1), np.int64),
                "steps": np.full((1, 1), 4, np.int32),
                "analytic": np.full((1, 1), 2, np.int32),
            },
        ]
    )
    local = run_cli("sample", "--model", out, "-n", "3", "--save", "npz", "--out", tmp_path / "l")
    assert local.exit_code == 0, local.output
    np.testing.assert_array_equal(
        own["image"][:, 0], np.load(tmp_path / "l" / "samples.npz")["images"]
    )
    run_cli(
        "sample",
        "--model",
        out,
        "-n",
        "1",
        "--steps",
        "4",
        "--analytic",
        "2",
        "--save",
        "npz",
        "--out",
        tmp_path / "e",
    )
    np.testing.assert_array_equal(
        explicit["image"][:, 0], np.load(tmp_path / "e" / "samples.npz")["images"]
    )


def test_without_learn_the_spec_is_the_training_free_grid(tiny, tmp_path):
    result = learn(tiny, tmp_path / "free.onnx", "--no-learn")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert "learned" not in report
    assert report["chosen"]["timesteps"] == report["training_free"]["timesteps"]
    assert "mix" not in report["chosen"]


def test_the_summary_names_the_grid_and_the_file(tiny, tmp_path):
    out = tmp_path / "s.onnx"
    result = learn(tiny, out, json_and_fit=False)
    assert result.exit_code == 0, result.output
    assert (
        "training-free:" in result.stdout
        and f"wrote {out}: its training-free sampler" in result.stdout
    )
