"""No command destroys what it was not asked to write (Hardening III, issue 35): an existing output
that is not a regular file or a folder is refused in one line before any work; --force removes only
the command's own files and never follows a link out of the output folder; a published run folder
holds only this run's outputs; a FIFO as a model is refused at once instead of hanging."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys

import pytest

from tests.helpers import REPO, assert_one_line_error, run_cli, write_idx


def make_special(path, kind: str) -> None:
    """A FIFO, a socket or a character device (/dev/null's numbers) at ``path``."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        sock.close()  # the socket file stays
    else:
        try:
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        except PermissionError:
            pytest.skip("mknod needs root (CAP_MKNOD)")


def assert_still(path, kind: str) -> None:
    test = {"fifo": stat.S_ISFIFO, "socket": stat.S_ISSOCK, "device": stat.S_ISCHR}[kind]
    assert test(os.lstat(path).st_mode), f"{path} was replaced"


# -- a. special files as outputs -------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["fifo", "socket", "device"])
def test_forward_refuses_a_special_file_as_out(kind, tmp_path):
    data = write_idx(tmp_path / "data", n=16)
    target = tmp_path / "out.png"
    make_special(target, kind)
    result = run_cli("forward", "--data-root", data, "-n", "2", "--out", target)
    assert_one_line_error(result, str(target), "not a regular file or a folder")
    assert_still(target, kind)


def test_sample_refuses_a_fifo_where_it_would_write(random_onnx, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    os.mkfifo(out / "samples.png")
    result = run_cli(
        "sample", "--model", random_onnx, "--out", out, "--sampler", "ddim", "--steps", "2",
        "-n", "1",
    )  # fmt: skip
    assert_one_line_error(result, "samples.png", "FIFO")
    assert_still(out / "samples.png", "fifo")
    assert sorted(p.name for p in out.iterdir()) == ["samples.png"]  # nothing written


def test_export_refuses_a_fifo_as_its_onnx_output(random_checkpoint, tmp_path):
    target = tmp_path / "m.onnx"
    os.mkfifo(target)
    result = run_cli("export", random_checkpoint, "-o", target)
    assert_one_line_error(result, "FIFO")
    assert_still(target, "fifo")


def test_import_diffusers_refuses_a_fifo_as_its_checkpoint_before_reading(tmp_path):
    folder = tmp_path / "pipe"
    (folder / "unet").mkdir(parents=True)  # not a diffusers folder: refused only after this check
    target = tmp_path / "m.safetensors"
    os.mkfifo(target)
    result = run_cli("import-diffusers", folder, "-o", tmp_path / "m.onnx", "--checkpoint", target)
    assert_one_line_error(result, "FIFO")
    assert_still(target, "fifo")


def test_the_file_helpers_refuse_special_files(tmp_path):
    from ddpm_deploy.errors import UserError
    from ddpm_deploy.files import atomic_path, check_writable, writable_dir

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="FIFO"), atomic_path(fifo):
        pass
    with pytest.raises(UserError, match="FIFO"):
        check_writable(fifo)
    with pytest.raises(UserError, match="FIFO"):
        writable_dir(fifo)
    with pytest.raises(UserError, match="FIFO"):
        writable_dir(tmp_path, ["fifo"])
    assert_still(fifo, "fifo")


# -- b. export-web --force and a linked ort/ -------------------------------------------------------
def fake_ort_web(root):
    """A node_modules whose onnxruntime-web 1.30.0 holds the files the page copies (their bytes
    do not matter to export-web)."""
    from ddpm_deploy.export import web

    dist = root / "onnxruntime-web" / "dist"
    dist.mkdir(parents=True)
    (root / "onnxruntime-web" / "package.json").write_text(
        json.dumps({"version": web.ORT_WEB_VERSION})
    )
    for name in web.ORT_WASM + web.ORT_WEBGPU:
        (dist / name).write_text(name)
    return root


def test_export_web_force_never_writes_through_a_linked_ort(random_onnx, tmp_path):
    modules = fake_ort_web(tmp_path / "node_modules")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "ort.wasm.min.mjs").write_text("the user's own")
    site = tmp_path / "site"
    site.mkdir()
    (site / "ort").symlink_to(elsewhere, target_is_directory=True)
    result = run_cli(
        "export-web", "--model", random_onnx, "-o", site, "--force", "--node-modules", modules
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in elsewhere.iterdir()) == ["ort.wasm.min.mjs"]
    assert (elsewhere / "ort.wasm.min.mjs").read_text() == "the user's own"
    ort = site / "ort"
    assert not ort.is_symlink() and ort.is_dir()  # the link replaced by the page's own folder
    assert (ort / "ort.wasm.min.mjs").read_text() == "ort.wasm.min.mjs"


def test_export_web_force_removes_only_its_own_earlier_files(random_onnx, tmp_path):
    modules = fake_ort_web(tmp_path / "node_modules")
    site = tmp_path / "site"
    args = ["export-web", "--model", random_onnx, "-o", site, "--node-modules", modules]
    assert run_cli(*args, "--webgpu").exit_code == 0
    (site / "mine.txt").write_text("keep")
    assert run_cli(*args, "--force").exit_code == 0
    assert (site / "mine.txt").read_text() == "keep"
    from ddpm_deploy.export import web

    # the earlier run's WebGPU files are gone with it: the folder holds this run's page only
    assert sorted(p.name for p in (site / "ort").iterdir()) == sorted(web.ORT_WASM)


@pytest.mark.parametrize("kind", ["file", "fifo"])
def test_export_web_refuses_an_ort_that_is_not_a_folder(kind, random_onnx, tmp_path):
    modules = fake_ort_web(tmp_path / "node_modules")
    site = tmp_path / "site"
    site.mkdir()
    if kind == "fifo":
        os.mkfifo(site / "ort")
    else:
        (site / "ort").write_text("mine")
    result = run_cli(
        "export-web", "--model", random_onnx, "-o", site, "--force", "--node-modules", modules
    )
    assert_one_line_error(result, "ort")
    assert sorted(p.name for p in site.iterdir()) == ["ort"]


# -- c. distill --force ----------------------------------------------------------------------------
DISTILL_SMALL = ["--analytic", "0", "--steps", "2", "--sub-steps", "2", "--images", "8",
                 "--batch-size", "4", "--held-out", "4", "--save-every", "1", "--threads", "1",
                 "--device", "cpu"]  # fmt: skip


def test_distill_force_never_deletes_a_folder_named_like_a_run_file(
    random_cond_checkpoint, tmp_path
):
    out = tmp_path / "out"
    mine = out / "card.json"  # a user's folder that happens to carry a run file's name
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("precious")
    result = run_cli("distill", random_cond_checkpoint, "-o", out, "--force", *DISTILL_SMALL)
    assert_one_line_error(result, "card.json", "folder")
    assert (mine / "notes.txt").read_text() == "precious"


def test_distill_force_unlinks_a_linked_run_file_and_keeps_its_target(
    random_cond_checkpoint, tmp_path
):
    out = tmp_path / "out"
    out.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("precious")
    (out / "history.csv").symlink_to(elsewhere, target_is_directory=True)
    (out / "card.json").symlink_to(elsewhere / "keep.txt")
    result = run_cli("distill", random_cond_checkpoint, "-o", out, "--force", *DISTILL_SMALL)
    assert result.exit_code == 0, result.output
    assert (elsewhere / "keep.txt").read_text() == "precious"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["keep.txt"]
    assert not (out / "card.json").is_symlink() and not (out / "history.csv").is_symlink()


# -- d. a run folder holds only this run's outputs -------------------------------------------------
def test_sample_without_npz_removes_the_previous_runs_npz(random_onnx, tmp_path):
    args = ["sample", "--model", random_onnx, "--out", tmp_path, "--sampler", "ddim", "--steps",
            "2", "-n", "1"]  # fmt: skip
    assert run_cli(*args, "--save", "npz").exit_code == 0
    assert (tmp_path / "samples.npz").is_file()
    (tmp_path / "mine.txt").write_text("keep")
    assert run_cli(*args).exit_code == 0
    record = json.loads((tmp_path / "run.json").read_text())
    assert "samples.npz" not in record["outputs"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*record["outputs"], "run.json", "mine.txt"]
    )


# -- e. a FIFO as the model ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["sample", "--model", "{fifo}.onnx", "--out", "{out}"],
        ["sample", "--model", "{fifo}.safetensors", "--backend", "torch", "--out", "{out}"],
        ["quantize", "{fifo}.onnx", "-o", "{out}/q.onnx"],
        ["export-web", "--model", "{fifo}.onnx", "-o", "{out}"],
    ],
    ids=["sample", "sample-torch", "quantize", "export-web"],
)
def test_a_fifo_as_the_model_is_refused_at_once(args, tmp_path):
    """In a subprocess with a timeout: before the fix the command blocks on open() for ever."""
    argv = [a.format(fifo=tmp_path / "model", out=tmp_path / "out") for a in args]
    fifo = next(a for a in argv if a.startswith(str(tmp_path / "model")))
    os.mkfifo(fifo)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "ddpm_deploy", *argv],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(argv)} hung on the FIFO")
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "FIFO" in errors[0], done.stderr
    assert_still(fifo, "fifo")
