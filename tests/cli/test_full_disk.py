"""What the machine refuses while a command writes (issue 35): a full disk, Ctrl-C, a path through a
file. One `Error:` line, never a traceback (also none at exit, from a writer collected later), and
nothing left behind: no half-written file, no staging folder, no output folder the run made.

The full disk is RLIMIT_FSIZE with SIGXFSZ ignored: every write past the limit fails with EFBIG,
as a full disk fails with ENOSPC, and needs no root to mount a small filesystem."""

from __future__ import annotations

import resource
import signal
import subprocess
import sys

import pytest

from tests.cli.test_data_loss import fake_ort_web
from tests.helpers import assert_one_line_error, run_cli

LIMIT = 40_000  # bytes any one file may reach: below every command's largest output


def small_disk() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failing write, not a killed process
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def on_a_small_disk(args: list[str], cwd=None) -> subprocess.CompletedProcess:
    """``ddpm-deploy ARGS`` in a process of its own whose files may not pass LIMIT bytes."""
    return subprocess.run(
        [sys.executable, "-m", "ddpm_deploy", *map(str, args)],
        capture_output=True,
        text=True,
        preexec_fn=small_disk,
        cwd=cwd,
        timeout=300,
    )


def commands(tmp_path) -> dict[str, list[str]]:
    modules = fake_ort_web(tmp_path / "node_modules")
    out = tmp_path / "work" / "out"
    return {
        "sample": ["sample", "--model", "emoji", "-n", "64", "--out", out],
        "export-web": ["export-web", "--model", "mnist", "-o", out, "--node-modules", modules],
        "export-sampler": ["export-sampler", "mnist", "--steps", "3", "-o", out / "new" / "s.onnx"],
        "triton-repo": ["triton-repo", "mnist", "-o", out],
    }


@pytest.mark.parametrize("command", ["sample", "export-web", "export-sampler", "triton-repo"])
def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, command):
    args = [str(a) for a in commands(tmp_path)[command]]
    (tmp_path / "work").mkdir()
    if command == "export-sampler":
        (tmp_path / "work" / "out").mkdir()
    before = sorted(p.name for p in (tmp_path / "work").rglob("*"))
    run = on_a_small_disk(args)
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr and "Exception ignored" not in run.stderr, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "File too large" in errors[0], run.stderr
    assert sorted(p.name for p in (tmp_path / "work").rglob("*")) == before


def interrupt(*args, **kwargs):
    raise KeyboardInterrupt  # Ctrl-C while the outputs are being written


def test_ctrl_c_during_export_web_leaves_no_folder(tmp_path, monkeypatch):
    from ddpm_deploy.export import web

    monkeypatch.setattr(web, "copy_model", interrupt)
    site = tmp_path / "new" / "site"
    modules = fake_ort_web(tmp_path / "node_modules")
    result = run_cli("export-web", "--model", "mnist", "-o", site, "--node-modules", modules)
    assert result.exit_code == 1 and "Aborted!" in result.output
    assert not (tmp_path / "new").exists()  # both folders the run made are gone


def test_ctrl_c_during_sample_keeps_a_folder_it_did_not_make(tmp_path, monkeypatch):
    from ddpm_deploy.runtime import pipeline

    monkeypatch.setattr(pipeline, "save_gif", interrupt)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("kept")
    result = run_cli("sample", "--model", "mnist", "-n", "2", "--out", tmp_path / "mine")
    assert result.exit_code == 1 and "Aborted!" in result.output
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]
    result = run_cli("sample", "--model", "mnist", "-n", "2", "--out", tmp_path / "made")
    assert result.exit_code == 1 and not (tmp_path / "made").exists()


def test_export_web_under_a_file_is_refused_before_the_work(tmp_path, monkeypatch):
    from ddpm_deploy.export import web

    monkeypatch.setattr(web, "build_sampler", interrupt)  # the work must not start
    (tmp_path / "a-file").write_text("")
    result = run_cli("export-web", "--model", "mnist", "-o", tmp_path / "a-file" / "site")
    assert_one_line_error(result, "a-file is a file, not a folder", "choose another path for -o")


@pytest.mark.parametrize("root_exists", [False, True])
def test_a_failed_download_is_one_line_and_takes_its_folders_with_it(
    tmp_path, monkeypatch, root_exists
):
    torchvision = pytest.importorskip("torchvision")

    class FashionMNIST:  # torchvision's class, offline: it makes its folders, then fails
        def __init__(self, root, train, download):
            raw = tmp_path / "data" / "FashionMNIST" / "raw"
            raw.mkdir(parents=True, exist_ok=True)
            (raw / "train-images-idx3-ubyte.gz").write_bytes(b"partial")
            raise RuntimeError("Error downloading train-images:\nTried http://x/, got:\n<urlopen>")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", FashionMNIST)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DDPM_DEPLOY_DATA", raising=False)
    if root_exists:
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / "mine.txt").write_text("kept")
    result = run_cli("train", "--epochs", "1", "--out", tmp_path / "run")
    assert_one_line_error(result, "the download failed: Error downloading train-images: Tried")
    assert len(result.output.strip().splitlines()) == 1, result.output
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert left == (["data", "data/mine.txt"] if root_exists else [])  # no FashionMNIST/, no run/


def test_a_failed_run_never_removes_a_folder_it_did_not_make(tmp_path):
    """ghost/../victim names victim, which exists: the run makes ghost (mkdir's parents) and must
    remove ghost, never the user's empty victim (it removed victim and left ghost)."""
    (tmp_path / "victim").mkdir()
    args = ["sample", "--model", "emoji", "-n", "64", "--out", "ghost/../victim"]
    run = on_a_small_disk(args, cwd=tmp_path)
    assert run.returncode == 1 and "File too large" in run.stderr, run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["victim"]


def test_a_full_disk_under_safetensors_is_one_line(tmp_path, mnist_root):
    """safetensors wraps the disk's error in its own type (SafetensorError: "I/O error: File too
    large (os error 27)"): a traceback from train's first checkpoint."""
    args = ["train", "--dataset", "mnist", "--data-root", str(mnist_root), "--epochs", "1"]
    args += ["--limit", "256", "--out", str(tmp_path / "run")]
    run = on_a_small_disk(args)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "File too large" in errors[0], run.stderr
