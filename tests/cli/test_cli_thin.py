"""docs/ARCHITECTURE.md invariant 5: the CLI is thin, and every way to start it is the same program."""

import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ddpm_deploy.cli import main

MAX_BODY_LINES = 25  # from `def` to the last line, docstring included
COMMANDS = {
    "train", "train-classifier", "bench-train", "export", "quantize", "build-engine", "sample",
    "forward", "evaluate", "bench", "serve", "triton-repo", "doctor", "export-web", "distill",
    "import-diffusers", "export-diffusers", "learn-sampler", "export-sampler",
}  # fmt: skip


def _listed(args: list[str]) -> set[str]:
    proc = subprocess.run([*args, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    block = proc.stdout.split("Commands:", 1)[1]
    return {m.group(1) for m in re.finditer(r"^  (\S+)", block, re.MULTILINE)}


def test_every_command_is_assembled():
    assert set(main.commands) == COMMANDS


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_function_is_short(name):
    fn = inspect.unwrap(main.commands[name].callback)
    lines = inspect.getsource(fn).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("def "))
    body = len(lines) - start
    assert body <= MAX_BODY_LINES, f"{name}: {body} lines; move the logic into the library"


def test_python_m_lists_the_commands_of_the_console_script():
    listed = _listed([sys.executable, "-m", "ddpm_deploy"])
    assert listed == COMMANDS
    assert _listed([sys.executable, "-m", "ddpm_deploy.cli"]) == listed  # what torchrun runs
    script = shutil.which("ddpm-deploy", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("no ddpm-deploy console script beside this Python (not pip-installed)")
    assert _listed([script]) == listed
