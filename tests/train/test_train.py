import json
import os
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch
from ddpm_deploy.train.checkpoint import load_model, read_checkpoint
from ddpm_deploy.train.loop import TrainConfig, saved_config, train

from tests.helpers import assert_one_line_error, run_cli, write_idx

# trains, exports, serves or drives a browser: outside the quick loop (`pytest -m "not slow"`)
pytestmark = pytest.mark.slow


def _weights(path):
    tensors, _ = read_checkpoint(path)
    return {k: v for k, v in tensors.items() if k.startswith(("model.", "ema."))}


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.slow
def test_short_real_run_loss_falls(data_root, tmp_path):
    from ddpm_deploy.train.data import load_training_images
    from ddpm_deploy.train.diffusion import ForwardProcess
    from ddpm_deploy.train.reference_unet import ReferenceUNet

    from ddpm_deploy.schedule import Schedule

    # the loss of the untrained model (same seed) on a few batches is where training starts
    torch.manual_seed(0)
    model = ReferenceUNet().eval()
    data = load_training_images("fashion_mnist", data_root, limit=512)
    g = torch.Generator().manual_seed(0)
    t = torch.randint(0, 1000, (512,), generator=g)
    eps = torch.randn(data.shape, generator=g)
    with torch.inference_mode():
        start = torch.nn.functional.mse_loss(
            model(ForwardProcess(Schedule()).q_sample(data, t, eps), t), eps
        )

    cfg = TrainConfig(
        out=str(tmp_path),
        data_root=str(data_root),
        epochs=3,
        batch_size=32,
        limit=3200,
        arch="reference",
    )
    train(cfg)  # 300 optimiser steps
    history = json.loads(read_checkpoint(tmp_path / "last.safetensors")[1]["history"])
    assert [h["steps"] for h in history] == [100, 100, 100]
    assert start.item() > 0.9
    assert history[-1]["loss"] < 0.3 * start.item(), (start.item(), history)
    assert (tmp_path / "loss.png").stat().st_size > 0
    assert (tmp_path / "loss.csv").read_text().count("\n") == 4


def _small(tmp_path, name, **kw):
    data = tmp_path / "data"
    if not data.exists():
        write_idx(data, n=256)
    kw = {"arch": "reference", "ema": 0.9, **kw}
    return TrainConfig(out=str(tmp_path / name), data_root=str(data), batch_size=64, **kw)


def test_same_seed_gives_identical_checkpoints(tmp_path):
    train(_small(tmp_path, "a", epochs=2))
    train(_small(tmp_path, "b", epochs=2))
    _assert_same(
        _weights(tmp_path / "a/last.safetensors"), _weights(tmp_path / "b/last.safetensors")
    )
    c = _small(tmp_path, "c", epochs=2)
    c.seed = 1
    train(c)
    assert not torch.equal(
        _weights(tmp_path / "a/last.safetensors")["model.conv_out.weight"],
        _weights(tmp_path / "c/last.safetensors")["model.conv_out.weight"],
    )


def test_resume_continues_exactly(tmp_path):
    train(_small(tmp_path, "straight", epochs=3))
    train(_small(tmp_path, "resumed", epochs=1))
    cfg = saved_config(tmp_path / "resumed")
    cfg.epochs = 3
    train(cfg, resume=True)
    _assert_same(
        _weights(tmp_path / "straight/last.safetensors"),
        _weights(tmp_path / "resumed/last.safetensors"),
    )


def test_conditional_resunet_resumes_exactly(tmp_path):
    """Label dropout, warm-up and the EMA warm-up all continue where they stopped."""
    settings = {"arch": "resunet", "cond": True, "base": 16, "warmup": 5}
    train(_small(tmp_path, "straight", epochs=2, **settings))
    train(_small(tmp_path, "resumed", epochs=1, **settings))
    cfg = saved_config(tmp_path / "resumed")
    cfg.epochs = 2
    train(cfg, resume=True)
    _assert_same(
        _weights(tmp_path / "straight/last.safetensors"),
        _weights(tmp_path / "resumed/last.safetensors"),
    )
    _, card = load_model(tmp_path / "straight/last.safetensors")
    assert card["arch"]["num_classes"] == 10 and card["arch"]["base"] == 16
    assert card["classes"][7] == "Sneaker"


def test_label_dropout_share_and_null_label():
    from ddpm_deploy.train.diffusion import ForwardProcess
    from ddpm_deploy.train.loop import train_step

    from ddpm_deploy.schedule import Schedule

    seen = []

    class Spy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x, t, y):
            seen.append(y.clone())
            return x * self.w

    model = Spy()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    x0 = torch.zeros(20_000, 1, 28, 28)
    y = torch.arange(20_000) % 10
    gen = torch.Generator().manual_seed(0)
    train_step(model, opt, ForwardProcess(Schedule()), x0, gen, None, y, 10, 0.1)
    (got,) = seen
    dropped = got == 10
    assert abs(dropped.float().mean().item() - 0.1) < 0.01  # binomial sd 0.002
    assert torch.equal(got[~dropped], y[~dropped])


def test_ema_warmup_follows_the_formula(tmp_path):
    from ddpm_deploy.train.loop import Trainer

    trainer = Trainer(_small(tmp_path, "ema", epochs=1, ema=0.999))
    for step, want in ((0, 0.1), (10, 11 / 20), (50_000, 0.999)):
        trainer.step = step
        assert trainer.ema_decay() == pytest.approx(want)
    trainer.cfg.ema_warmup = False
    assert trainer.ema_decay() == 0.999


def _writes_in_progress(out) -> list[str]:
    return [p.name for p in out.glob(".*.tmp*")]


def _kill_training(out, data, moment: str) -> bool:
    """Start `train`, SIGKILL it at ``moment`` ("mid-write": while a checkpoint's temporary file
    exists, after the first checkpoint; "after a write": the moment the first last.safetensors
    appears, its best.safetensors possibly not yet), and say whether that moment was caught."""
    cmd = [
        sys.executable,
        "-m",
        "ddpm_deploy.cli",
        "train",
        "--data-root",
        str(data),
        "--out",
        str(out),
        "--epochs",
        "100",
        "--batch-size",
        "32",
        "--no-download",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last, caught = out / "last.safetensors", False
    try:
        deadline = time.time() + 180
        while not last.exists() and time.time() < deadline:
            time.sleep(0.01)
        caught = last.exists() and moment == "after a write"
        while not caught and time.time() < deadline and proc.poll() is None:
            caught = bool(_writes_in_progress(out))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return caught


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["mid-write", "after a write"])
def test_a_kill_leaves_loadable_checkpoints_and_resumes(tmp_path, moment):
    data = write_idx(tmp_path / "data", n=256)
    out = tmp_path / "run"
    assert _kill_training(out, data, moment), f"never saw the moment {moment!r} to kill at"
    leftovers = _writes_in_progress(out)
    for name in ("best.safetensors", "last.safetensors"):
        model, card = load_model(out / name)
        assert card["training"]["epochs_done"] >= 1
    done = json.loads(read_checkpoint(out / "last.safetensors")[1]["history"])
    result = run_cli("train", "--resume", out, "--epochs", len(done) + 1)
    assert result.exit_code == 0, result.output
    again = json.loads(read_checkpoint(out / "last.safetensors")[1]["history"])
    assert [h["epoch"] for h in again] == list(range(1, len(done) + 2))
    assert again[: len(done)] == done
    # killed mid-write, a hidden temporary file is left (almost always: the write may finish
    # between seeing it and the kill); it is never taken for a checkpoint
    assert all(name.startswith(".") and ".tmp" in name for name in leftovers)
    assert not [
        p
        for p in out.iterdir()
        if p.suffix == ".safetensors"
        and not p.name.startswith(".")
        and p.name not in ("best.safetensors", "last.safetensors")
    ]


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_pickle_renamed_to_safetensors_is_rejected_without_running(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake = tmp_path / "model.safetensors"
    fake.write_bytes(pickle.dumps({"state": _Evil()}))
    for args in (
        ["export", fake, "-o", tmp_path / "m.onnx"],
        ["sample", "--backend", "torch", "--model", fake],
    ):
        result = run_cli(*args)
        assert_one_line_error(result, "is not a safetensors checkpoint", "never loads pickles")
    assert not (tmp_path / "PWNED").exists()
    assert not (tmp_path / "m.onnx").exists()
