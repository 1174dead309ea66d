"""Dockerfile.jetson, checked as text: no Docker engine or Jetson is available to build it here."""

import re

from tests.conftest import REPO

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
    readme = (REPO / "README.md").read_text()
    runs = [line for line in readme.splitlines() if line.startswith("docker run")]
    assert runs and all("--group-add video" in line for line in runs)
