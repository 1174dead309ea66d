"""docs/ARCHITECTURE.md invariant 2: the runtime and `sample --backend ort` work with torch blocked."""

import json
import subprocess
import sys

SCRIPT = """
import sys
sys.modules["torch"] = None  # any `import torch` now raises ImportError
import ddpm_deploy.runtime
from ddpm_deploy.cli import main
main(["sample", "--model", sys.argv[1], "--sampler", "ddim", "--steps", "5", "-n", "2",
      "--out", sys.argv[2]], standalone_mode=False)
assert sys.modules["torch"] is None
print("heavy:", sorted(m for m in ("torchvision", "onnx", "safetensors") if m in sys.modules))
"""


def test_runtime_samples_with_torch_blocked(random_onnx, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(random_onnx), str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "heavy: []" in proc.stdout
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["backend"] == "ort" and record["device"] == "CPUExecutionProvider"
    assert (tmp_path / "samples.png").stat().st_size > 0 and (
        tmp_path / "sampling.gif"
    ).stat().st_size > 0


def test_torch_backend_says_what_to_install_when_torch_is_missing(random_checkpoint, tmp_path):
    script = (
        "import sys; sys.modules['torch'] = None\n"
        "from ddpm_deploy.cli import main\n"
        f"main(['sample', '--backend', 'torch', '--model', {str(random_checkpoint)!r}, '--out', {str(tmp_path)!r}])"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "pip install 'ddpm-deploy[train]'" in proc.stderr


def test_shipped_default_model_samples_with_torch_blocked(tmp_path):
    script = (
        "import sys; sys.modules['torch'] = None\n"
        "from ddpm_deploy.cli import main\n"
        f"main(['sample', '--sampler', 'ddim', '--steps', '3', '-n', '2', '--out', {str(tmp_path)!r}],"
        " standalone_mode=False)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["model"].endswith("fashion_mnist.onnx") and record["dataset"] == "fashion_mnist"


def test_shipped_mnist_model_and_evaluate_run_with_torch_blocked(tmp_path, mnist_root):
    script = (
        "import sys; sys.modules['torch'] = None\n"
        "from ddpm_deploy.cli import main\n"
        f"main(['sample', '--model', 'mnist', '--sampler', 'ddim', '--steps', '3', '-n', '2', "
        f"'--out', {str(tmp_path)!r}], standalone_mode=False)\n"
        f"main(['evaluate', '--model', 'mnist', '--sampler', 'ddim', '--steps', '2', '-n', '129', "
        f"'--data-root', {str(mnist_root)!r}, '--json'], standalone_mode=False)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["model"].endswith("mnist.onnx") and record["dataset"] == "mnist"
    result = json.loads(proc.stdout[proc.stdout.index("{") :])
    assert result["dataset"] == "mnist" and result["classifier"]["path"].endswith(
        "mnist_classifier.onnx"
    )


def test_class_conditional_sampling_with_torch_blocked(random_cond_onnx, tmp_path):
    script = (
        "import sys; sys.modules['torch'] = None\n"
        "from ddpm_deploy.cli import main\n"
        f"main(['sample', '--model', {str(random_cond_onnx)!r}, '--sampler', 'ddim', '--steps', '2',"
        f" '--class', 'all', '-n', '3', '--guidance', '3', '--out', {str(tmp_path)!r}],"
        " standalone_mode=False)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["n"] == 30 and record["class"] == "all" and record["guidance"] == 3.0
    import imageio.v3 as iio

    picture = iio.imread(tmp_path / "samples.png")
    assert picture.shape == (10 * 30 + 2, 3 * 30 + 2)  # one row of 3 per class, 2-pixel gaps
