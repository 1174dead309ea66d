"""The public API type-checks (py.typed): mypy on a user's program and on runtime/api.py, over the
package laid out as it is installed (pyproject's package-dir maps runtime/ to ddpm_deploy/runtime)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

USER_PROGRAM = """
import numpy as np

import ddpm_deploy

model: ddpm_deploy.Model = ddpm_deploy.load("fashion_mnist", backend="ort", threads=2)
images, labels = model.sample(16, seed=0, classes="sneaker", guidance=2.0)
first: np.ndarray = images[0]
for chunk, chunk_labels in model.sample_iter(100, seed=0, batch=50):
    print(chunk.shape, None if chunk_labels is None else chunk_labels[:3])
plan: ddpm_deploy.Plan = model.plan(4, seed=1)
names: list[str] = model.classes
print(model.card["dataset"], model.sampler["timesteps"], plan.count, names)
try:
    ddpm_deploy.load("missing.onnx")
except ddpm_deploy.UserError as e:
    print(e)
"""


def test_the_public_api_type_checks(tmp_path):
    if shutil.which("mypy", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("mypy is not installed (pip install -e '.[dev]')")
    package = tmp_path / "ddpm_deploy"
    package.mkdir()
    for item in (REPO / "ddpm_deploy").iterdir():
        (package / item.name).symlink_to(item)
    for stage in ("runtime", "hardware"):  # what runtime/api.py reaches
        (package / stage).symlink_to(REPO / stage)
    (tmp_path / "use.py").write_text(USER_PROGRAM)
    assert (REPO / "ddpm_deploy" / "py.typed").is_file()
    mypy = Path(sys.executable).parent / "mypy"
    args = ["--follow-imports=silent", "--ignore-missing-imports", "--no-incremental"]
    files = ["use.py", "ddpm_deploy/runtime/api.py", "ddpm_deploy/__init__.py"]
    proc = subprocess.run([str(mypy), *args, *files], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
