"""Dockerfile.jetson, checked as text: no Docker engine or Jetson is available to build it here."""

import os
import re
import subprocess
import sys

import pytest

from tests.helpers import REPO

TEXT = (REPO / "Dockerfile.jetson").read_text()
RUNS = re.findall(r"^RUN (.*?)(?<!\\)$", TEXT, flags=re.M | re.S)


def test_the_build_check_runs_outside_the_source_folder_and_without_tensorrt():
    checks = [r for r in RUNS if "python3 -c" in r]
    assert checks and all("import tensorrt" not in r for r in checks)
    workdirs = re.findall(r"^WORKDIR (\S+)", TEXT, flags=re.M)
    before_check = TEXT[: TEXT.index(checks[0])]
    assert re.findall(r"^WORKDIR (\S+)", before_check, flags=re.M)[-1] == "/"
    assert "/opt/ddpm-deploy" in workdirs  # the source folder that would shadow the package


def test_the_user_can_reach_the_gpu():
    assert re.search(r"useradd .*--groups video", TEXT)


def test_cuda_python_is_pinned_to_the_jetpacks_cuda():
    assert 'ARG CUDA_PYTHON="cuda-python>=12.6,<12.7"' in TEXT
    assert '"${CUDA_PYTHON}"' in TEXT


def test_readme_docker_lines_add_the_video_group():
    # the Jetson section, moved from the README
    readme = (REPO / "docs" / "TENSORRT.md").read_text()
    runs = [line for line in readme.splitlines() if line.startswith("docker run")]
    assert runs and all("--group-add video" in line for line in runs)


# -- JetPack 6 conventions (dusty-nv/jetson-containers; facts in hardware/trt_facts.py) ---------


def arg(name: str) -> str:
    (value,) = re.findall(rf"^ARG {name}=(.*)$", TEXT, flags=re.M)
    return value.strip('"')


def test_onnxruntime_gpu_comes_from_the_jetson_ai_lab_index_of_the_jetpack():
    from ddpm_deploy.hardware import trt_facts

    assert (
        arg("ORT_INDEX_URL")
        == trt_facts.JETSON_ORT_INDEX
        == "https://pypi.jetson-ai-lab.io/jp6/cu126"
    )
    assert arg("ORT_VERSION") == trt_facts.JETSON_ORT_VERSION
    assert arg("NUMPY") == trt_facts.JETSON_NUMPY == "numpy<2"
    assert arg("L4T_JETPACK_TAG") == "r36.4.0"  # r36.4 is jp6/cu126
    (install,) = [r for r in RUNS if "onnxruntime-gpu" in r]
    assert '--no-deps --index-url "${ORT_INDEX_URL}" "onnxruntime-gpu==${ORT_VERSION}"' in install
    assert (
        install.count('"${NUMPY}"') == 3
    )  # the runtime, beside onnxruntime-gpu, beside the CPU one
    assert "ORT_WHEEL" not in TEXT


def test_tensorrt_is_not_said_to_be_mounted_at_run_time():
    assert "mount" not in TEXT.lower()
    assert "TensorRT (with its Python bindings) live inside the l4t-jetpack" in TEXT.replace(
        "\n# ", " "
    )
    assert "only the driver and Tegra libraries from the host" in TEXT.replace("\n# ", " ")


def build_check() -> str:
    (check,) = [r for r in RUNS if "python3 -c" in r]
    return re.search(r'python3 -c "(.*?)"\s*\\?\s*&&', check.replace("\\\n", ""), flags=re.S).group(
        1
    )


def test_the_build_check_comes_after_onnxruntime_is_installed():
    assert TEXT.index("onnxruntime-gpu==${ORT_VERSION}") < TEXT.index("RUN python3 -c")
    assert "onnxruntime as ort" in build_check() and "InferenceSession" in build_check()


@pytest.mark.parametrize(
    "index,passes", [("", True), ("https://pypi.jetson-ai-lab.io/jp6/cu126", False)]
)
def test_the_build_check_runs_here_and_wants_the_tensorrt_provider_from_the_index(
    tmp_path, index, passes
):
    """Run as the image runs it (from another folder, with ORT_INDEX_URL set by the ARG): the CPU
    onnxruntime here passes without the index and fails with it (no TensorRT provider compiled in)."""
    env = {**os.environ, "ORT_INDEX_URL": index}
    result = subprocess.run(
        [sys.executable, "-c", build_check()], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    if passes:
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("ddpm-deploy runtime ok: numpy ")
    else:
        assert result.returncode != 0 and "AssertionError" in result.stderr


def test_readme_builds_with_the_index_and_says_unverified():
    readme = (REPO / "docs" / "TENSORRT.md").read_text()  # moved from the README
    section = readme[readme.index("## Jetson container") :]
    assert "--build-arg ORT_INDEX_URL=https://pypi.jetson-ai-lab.io/jp6/cu126" in section
    assert "**unverified\non hardware**" in section or "**unverified on hardware**" in section
    assert "mounts" not in section and "ORT_WHEEL" not in readme
