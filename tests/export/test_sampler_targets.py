"""The sampler file on its targets: `ddpm-deploy sample --model sampler.onnx` (ONNX Runtime and
OpenVINO) and examples/sample_onnx.py (onnxruntime, numpy and Pillow only) draw the images
`ddpm-deploy sample` draws from the model for the same seed."""

import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
from click.testing import CliRunner

from ddpm_deploy.cli import main
from tests.helpers import REPO


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The default model's sampler file, and `sample`'s picture of seed 5 from the model."""
    root = tmp_path_factory.mktemp("sampler")
    runner = CliRunner()
    result = runner.invoke(main, ["export-sampler", "-o", str(root / "sampler.onnx")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["sample", "--seed", "5", "--out", str(root / "numpy")])
    assert result.exit_code == 0, result.output
    return root


def same_picture(a, b):
    levels = np.abs(iio.imread(a).astype(int) - iio.imread(b))
    assert (levels == 0).mean() >= 0.999 and levels.max() <= 1


@pytest.mark.parametrize("backend", ["ort", "openvino"])
def test_sample_runs_the_sampler_file(files, backend):
    if backend == "openvino":
        pytest.importorskip("openvino")
    out = files / backend
    args = ["sample", "--model", str(files / "sampler.onnx"), "--seed", "5", "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--backend", backend])
    assert result.exit_code == 0, result.output
    assert "4 network calls per image" in result.output
    same_picture(out / "samples.png", files / "numpy" / "samples.png")


def test_the_sampler_file_refuses_other_settings(files):
    model = str(files / "sampler.onnx")
    for args, message in [
        (["--steps", "5"], "holds its whole sampler"),
        (["--guidance", "3"], "written at guidance 1.0"),
        (["--backend", "openvino", "--seed", str(2**30)], "below 2^24"),
    ]:
        if "openvino" in args:
            pytest.importorskip("openvino")
        result = CliRunner().invoke(
            main, ["sample", "--model", model, "--out", str(files / "x"), *args]
        )
        assert result.exit_code == 1 and message in result.output, (args, result.output)


def test_the_example_needs_only_onnxruntime_numpy_and_pillow(files, tmp_path):
    """examples/sample_onnx.py, with ddpm_deploy made unimportable, writes sample's picture."""
    example = REPO / "examples" / "sample_onnx.py"
    assert len(example.read_text().splitlines()) <= 30
    code = (
        "import runpy, sys; sys.modules['ddpm_deploy'] = None; "
        f"sys.argv = ['sample_onnx.py', {str(files / 'sampler.onnx')!r}, '5']; "
        f"runpy.run_path({str(example)!r}, run_name='__main__')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "Removing initializer" not in proc.stderr  # no ONNX Runtime warning for users
    same_picture(tmp_path / "samples.png", files / "numpy" / "samples.png")


def test_export_sampler_never_imports_torch(tmp_path):
    """The `sampler` extra (onnx) is enough: no torch, as the README's snippet promises."""
    out = tmp_path / "s.onnx"
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from ddpm_deploy.cli import main\n"
        f"main(['export-sampler', '-o', {str(out)!r}], standalone_mode=False)\n"
        "print('heavy:', sorted(m for m in ('torchvision', 'safetensors') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "heavy: []" in proc.stdout and out.is_file()


@pytest.mark.parametrize("command", ["bench", "serve"])
def test_bench_and_serve_send_a_sampler_file_where_it_runs(files, command):
    """bench times the numpy loop's network calls and serve runs the numpy loop: both say in one
    line where a whole-sampler file goes instead."""
    if command == "serve":
        pytest.importorskip("pytriton")
    result = CliRunner().invoke(main, [command, "--model", str(files / "sampler.onnx")])
    assert result.exit_code == 1 and "holds its whole sampler" in result.output, result.output
    assert "Traceback" not in result.output
