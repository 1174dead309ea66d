"""The TensorRT extras in pyproject.toml and docs/TENSORRT.md's table, checked against the facts
read from the packages (hardware/trt_facts.py): no GPU, no TensorRT, no onnxruntime-gpu needed."""

from __future__ import annotations

import re

import pytest
from ddpm_deploy.hardware import trt_facts as facts
from ddpm_deploy.hardware.gpu import MIN_TENSORRT
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tests.helpers import REPO

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

EXTRAS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
README = (REPO / "docs" / "TENSORRT.md").read_text()  # the TensorRT page, moved from the README


def requirements(extra: str) -> dict[str, Requirement]:
    return {r.name: r for r in map(Requirement, EXTRAS[extra])}


def tensorrt_of(extra: str) -> Requirement:
    return requirements(extra)[f"tensorrt-cu{facts.TRT_EXTRAS[extra]['cuda']}"]


def releases(req: Requirement) -> list[Version]:
    """The registry's releases of that TensorRT wheel (as read) that the pin admits."""
    return sorted(v for v in map(Version, facts.TENSORRT_RELEASES[req.name]) if v in req.specifier)


def ort_wheels(cuda: int) -> dict[str, facts.OrtGpuWheel]:
    spec = SpecifierSet(facts.ORT_GPU_FOR_CUDA[cuda])
    return {v: w for v, w in facts.ORT_GPU_WHEELS.items() if Version(v) in spec}


def test_the_tensorrt_extras_are_the_ones_the_facts_describe():
    assert {n for n in EXTRAS if n.startswith("trt-")} == set(facts.TRT_EXTRAS)


@pytest.mark.parametrize("extra", sorted(facts.TRT_EXTRAS))
def test_every_extra_installs_a_tensorrt_that_the_trt_backend_runs(extra):
    cuda = facts.TRT_EXTRAS[extra]["cuda"]
    reqs = requirements(extra)
    assert not [n for n in reqs if n.startswith("tensorrt-cu") and n != f"tensorrt-cu{cuda}"]
    admitted = releases(tensorrt_of(extra))
    assert admitted, f"{extra}: {tensorrt_of(extra)} admits no release on the registry"
    assert {v.major for v in admitted} <= set(facts.BACKEND_TENSORRT_MAJORS)
    # bounded above: a TensorRT major the backend was not written for is never resolved
    assert (
        Version(f"{max(facts.BACKEND_TENSORRT_MAJORS) + 1}.0") not in tensorrt_of(extra).specifier
    )
    cuda_python = reqs["cuda-python"].specifier
    assert Version(f"{cuda}.9") in cuda_python
    assert Version(f"{cuda + 1}.0") not in cuda_python
    assert Version(f"{cuda - 1}.9") not in cuda_python


@pytest.mark.parametrize("extra", sorted(facts.TRT_EXTRAS))
def test_an_extra_for_ort_admits_only_the_tensorrt_its_provider_links(extra):
    cuda, for_ort = facts.TRT_EXTRAS[extra]["cuda"], facts.TRT_EXTRAS[extra]["ort_provider"]
    wheels = ort_wheels(cuda)
    assert wheels and {w.cuda for w in wheels.values()} == {cuda}
    linked = {w.tensorrt for w in wheels.values()}
    majors = {v.major for v in releases(tensorrt_of(extra))}
    if for_ort:
        assert majors == linked == {10}
    else:  # it admits a TensorRT the provider cannot load: that is why it is not for ORT
        assert majors - linked == {11}


def test_what_the_extras_resolve_to_today():
    newest = {extra: releases(tensorrt_of(extra))[-1] for extra in facts.TRT_EXTRAS}
    assert newest == {
        "trt-cu12": Version("10.16.1.11"),
        "trt-cu13": Version("11.4.0.106"),  # --backend trt only
        "trt-cu13-ort": Version("10.16.1.11"),
    }
    assert facts.ort_extra(12) == "trt-cu12" and facts.ort_extra(13) == "trt-cu13-ort"


def test_the_ort_ranges_cover_their_cuda_and_stop_at_the_newest_release_read():
    newest = max(map(Version, facts.ORT_GPU_WHEELS))
    for cuda, spec in facts.ORT_GPU_FOR_CUDA.items():
        same_cuda = {v for v, w in facts.ORT_GPU_WHEELS.items() if w.cuda == cuda}
        assert set(ort_wheels(cuda)) == same_cuda, cuda
        assert Version(f"{newest.major}.{newest.minor + 1}.0") not in SpecifierSet(spec)


def test_the_facts_hold_what_the_wheels_said():
    """What readelf showed (2026-11-30); an edit that contradicts it fails here."""
    w = facts.ORT_GPU_WHEELS
    assert (w["1.31.1"].tensorrt, w["1.31.1"].cuda, w["1.31.1"].cudnn) == (10, 13, 9)
    assert (w["1.26.0"].cuda, w["1.27.0"].cuda) == (12, 13)  # CUDA 13 from 1.27.0
    assert (w["1.17.1"].tensorrt, w["1.18.0"].tensorrt) == (8, 10)
    assert not [v for v, x in w.items() if x.tensorrt > 10]  # none loads TensorRT 11
    assert all(re.fullmatch(r"[0-9a-f]{64}", x.sha256) for x in w.values())
    assert "2026-11-30" in facts.ORT_GPU_READ and "readelf -d" in facts.ORT_GPU_READ
    assert facts.ORT_GPU_LAST_FOR_PY310 == "1.23.2"


def test_the_backend_majors_are_the_codes():
    assert min(facts.BACKEND_TENSORRT_MAJORS) == MIN_TENSORRT


def test_the_dev_install_pulls_no_tensorrt_nor_onnxruntime_gpu():
    def expand(extra: str) -> set[str]:
        names = set()
        for r in map(Requirement, EXTRAS[extra]):
            names |= (
                set().union(*(expand(e) for e in r.extras)) if r.name == "ddpm-deploy" else {r.name}
            )
        return names

    dev = expand("dev")
    assert "pytest" in dev and "onnx" in dev  # the expansion really walks the extras
    assert not {n for n in dev if n.startswith(("tensorrt", "onnxruntime-gpu", "cuda-python"))}


def test_the_readme_table_matches_the_extras_and_the_facts():
    rows = {}
    for line in README.splitlines():
        m = re.search(r"\.\[(trt-[\w-]+)\]", line)
        if line.startswith("|") and m:
            rows[m.group(1)] = [c.strip() for c in line.strip("|").split("|")]
    assert set(rows) == set(facts.TRT_EXTRAS)
    for extra, (_, _, tensorrt, ort, cuda_python, _) in rows.items():
        cuda, for_ort = facts.TRT_EXTRAS[extra]["cuda"], facts.TRT_EXTRAS[extra]["ort_provider"]
        admitted = releases(tensorrt_of(extra))
        assert tensorrt.startswith(f"{admitted[0].major}.{admitted[0].minor}"), extra
        assert ("11" in tensorrt) == (11 in {v.major for v in admitted}), extra
        assert cuda_python.startswith(str(cuda)), extra
        if for_ort:
            assert ort.startswith("yes") and f"onnxruntime-gpu{facts.ORT_GPU_FOR_CUDA[cuda]}" in ort
        else:
            assert ort.startswith("no")
    # the install line for ORT uses the same range
    assert f"'onnxruntime-gpu[cuda,cudnn]{facts.ORT_GPU_FOR_CUDA[13]}'" in README
    assert "No onnxruntime-gpu release loads TensorRT 11" in README
