"""Which TensorRT, CUDA and Python each NVIDIA package needs, as read from the packages themselves.

One table, in one place: the `trt-*` extras in pyproject.toml, docs/TENSORRT.md's table of combinations,
Dockerfile.jetson's defaults and `doctor` rest on it, and tests/core/test_trt_pins.py checks the
pins against it. Every fact says where and when it was read. Re-read a wheel (no GPU needed) with

    python -m ddpm_deploy.hardware.trt_facts onnxruntime_gpu-*.whl

which prints what its TensorRT provider library links. Import-light (stdlib only): `doctor` uses
the ELF reader below at run time, where onnxruntime-gpu may or may not be installed.
"""

from __future__ import annotations

import hashlib
import re
import struct
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

# -- what ONNX Runtime's TensorRT provider links ---------------------------------------------------

PROVIDER_LIBRARY = "libonnxruntime_providers_tensorrt.so"


@dataclass(frozen=True)
class OrtGpuWheel:
    tensorrt: int  # N of the libnvinfer.so.N (and libnvonnxparser.so.N) its TensorRT provider links
    cuda: int  # N of libcudart.so.N
    cudnn: int  # N of libcudnn.so.N
    sha256: str  # of the wheel that was read


ORT_GPU_READ = (
    "read 2026-11-30: `pip download --no-deps onnxruntime-gpu==V` from the package registry "
    "(onnxruntime_gpu-V-cp311-cp311-manylinux_*_x86_64.whl, sha256 below), then "
    "`readelf -d onnxruntime/capi/libonnxruntime_providers_tensorrt.so` (NEEDED entries); "
    "1.23.2's cp310 wheel (sha256 18de50c6...) links the same libraries"
)
ORT_GPU_WHEELS: dict[str, OrtGpuWheel] = {
    "1.17.0": OrtGpuWheel(tensorrt=8, cuda=11, cudnn=8, sha256="be0314afe399943904de7c1ca797cbcc63e6fad60eb85d3df6422f81dd94e79e"),
    "1.17.1": OrtGpuWheel(tensorrt=8, cuda=11, cudnn=8, sha256="b2cd54f2b0a05e6bc9ab30182b859364d30115a19c31be24aa2edef40be00277"),
    "1.18.0": OrtGpuWheel(tensorrt=10, cuda=11, cudnn=8, sha256="aa673c044f450b21163265cca2e35eb1ded03d48fb01dec6be1c412811e9b2b0"),
    "1.18.1": OrtGpuWheel(tensorrt=10, cuda=11, cudnn=8, sha256="af2d3ee6fba72b57abf6f379b8aca30ee773959d4346271e7d92557dd5cf2901"),
    "1.19.0": OrtGpuWheel(tensorrt=10, cuda=12, cudnn=9, sha256="c8bae9164d9586cbf7c7976915b515584d077470307a255b7ca03cf425ce38bf"),
    "1.19.2": OrtGpuWheel(tensorrt=10, cuda=12, cudnn=9, sha256="562fc7c755393eaad9751e56149339dd201ffbfdb3ef5f43ff21d0619ba9045f"),
    "1.20.0": OrtGpuWheel(tensorrt=10, cuda=12, cudnn=9, sha256="6338fdfc955489b1d4329498f7f07640c000f92eae8933de293adc5f5ed480f5"),
    "1.20.2": OrtGpuWheel(tensorrt=10, cuda=12, cudnn=9, sha256="85057c7006457bee14fc2a57417b7e4f396f10d9c1b08b11aae08ac2b825eeda"),
    "1.21.0": OrtGpuWheel(tensorrt=10, cuda=12, cudnn=9, sha256="e90a43d9d5449057fcc01298cec03b56b4a3effdc3c24dcaba3ba130527891e4"),
    "1.21.1": OrtGpuWheel(tensorrt=10, cuda=12, cudnn=9, sha256="f210e613293bf939cf62b4ffa149cc4ccc5622430044e72201a058b261799eed"),
    "1.22.0": OrtGpuWheel(tensorrt=10, cuda=12, cudnn=9, sha256="d30c1512f22b1f01bacb4f177d49cbefd23e0f4bef56066f1282992d133e6ff8"),
    "1.23.0": OrtGpuWheel(tensorrt=10, cuda=12, cudnn=9, sha256="6b474c8aaa4e4f24a6503041efea3c13467f5dd824b65add3e49298cf9efb0aa"),
    "1.23.2": OrtGpuWheel(tensorrt=10, cuda=12, cudnn=9, sha256="d76d1ac7a479ecc3ac54482eea4ba3b10d68e888a0f8b5f420f0bdf82c5eec59"),
    "1.24.1": OrtGpuWheel(tensorrt=10, cuda=12, cudnn=9, sha256="ac4bfc90c376516b13d709764ab257e4e3d78639bf6a2ccfc826e9db4a5c7ddf"),
    "1.24.4": OrtGpuWheel(tensorrt=10, cuda=12, cudnn=9, sha256="c2a698659271c28220b3f56fe9b63f70eae3b3c36afa544201bf750b929a36dc"),
    "1.25.0": OrtGpuWheel(tensorrt=10, cuda=12, cudnn=9, sha256="e8625bb31ee2d88524414e7458cc604f4f958f323ef8832cc00882f6cd42b9a1"),
    "1.25.1": OrtGpuWheel(tensorrt=10, cuda=12, cudnn=9, sha256="fcdd93f7a74659e08137b5d9c705390e57b37ac86e6956ec0d7ccd81001afe0c"),
    "1.26.0": OrtGpuWheel(tensorrt=10, cuda=12, cudnn=9, sha256="4fa231294c2643911d2a7d16469c4808b0bdcdc4b5f4063d3a53744ce25b683a"),
    "1.27.0": OrtGpuWheel(tensorrt=10, cuda=13, cudnn=9, sha256="404fb845dc06a04a28df5a2c6d5967bcf3f534e7df0b98507ff81686a1b49594"),
    "1.28.0": OrtGpuWheel(tensorrt=10, cuda=13, cudnn=9, sha256="774d4c307317f7a0fefc33930820b7ac2a62be2c595e6a1e63e318555f7176b8"),
    "1.29.0": OrtGpuWheel(tensorrt=10, cuda=13, cudnn=9, sha256="de3caf93887ba4ad51c7d3cab04c7b464f9dd93c51047be5bfb413fd4a191e6a"),
    "1.30.0": OrtGpuWheel(tensorrt=10, cuda=13, cudnn=9, sha256="4fbf0c5d7b5fb99266c2e8a802e3e64af68bdc383e0f3c7349b985f1087eedaa"),
    "1.31.0": OrtGpuWheel(tensorrt=10, cuda=13, cudnn=9, sha256="f9a79e13492ce69cf58d7b97a7639bf407c8a4db291d9f6125131eac1d5758b9"),
    "1.31.1": OrtGpuWheel(tensorrt=10, cuda=13, cudnn=9, sha256="e26c475fe361b2015f45b4b824bd13f0bb20204e59b62814e6f0acd5f3d491a6"),
}  # fmt: skip

# The onnxruntime-gpu to install beside each TensorRT extra (docs/TENSORRT.md). Every release read above in
# these ranges links TensorRT 10 and the named CUDA major; the upper bound stops at the newest
# release read, so a new one is read (and added above) before the bound moves.
ORT_GPU_FOR_CUDA = {12: ">=1.19,<1.27", 13: ">=1.27,<1.32"}

PYTHON310_READ = (
    "read 2026-11-30: `pip index versions --python-version 3.10 --only-binary=:all: onnxruntime-gpu` "
    "(and onnxruntime), for manylinux_2_28 x86_64 and aarch64; aarch64 has no onnxruntime-gpu at all"
)
ORT_GPU_LAST_FOR_PY310 = "1.23.2"  # newer onnxruntime-gpu wheels need Python 3.11+
ORT_CPU_LAST_FOR_PY310 = "1.23.2"  # what JetPack 6's Python 3.10 gets from the public registry

# -- TensorRT itself ---------------------------------------------------------------------------------

# The project's own `--backend trt` (TensorRT's Python API: strongly typed networks, name-based
# tensors) runs on these majors: ddpm_deploy.hardware.gpu.MIN_TENSORRT and docs/TENSORRT.md; not a reading.
BACKEND_TENSORRT_MAJORS = (10, 11)

TENSORRT_READ = "read 2026-11-30: `pip index versions tensorrt-cu12` and `... tensorrt-cu13` on the package registry"
TENSORRT_RELEASES = {
    "tensorrt-cu12": (
        "10.0.1", "10.1.0", "10.2.0", "10.2.0.post1", "10.3.0", "10.4.0", "10.5.0", "10.6.0",
        "10.6.0.post1", "10.6.0.post2", "10.7.0", "10.7.0.post1", "10.8.0.43", "10.9.0.34",
        "10.10.0.31", "10.11.0.33", "10.12.0.36", "10.13.0.35", "10.13.2.6", "10.13.3.9",
        "10.13.3.9.post1", "10.14.1.48", "10.14.1.48.post1", "10.15.1.29", "10.16.0.72",
        "10.16.1.11", "11.0.0.114", "11.1.0.106", "11.2.1.2", "11.3.0.99", "11.4.0.106",
    ),
    "tensorrt-cu13": (
        "10.13.2.6", "10.13.3.9", "10.13.3.9.post1", "10.14.1.48", "10.14.1.48.post1",
        "10.15.1.29", "10.16.0.72", "10.16.1.11", "11.0.0.114", "11.1.0.106", "11.2.1.2",
        "11.3.0.99", "11.4.0.106",
    ),
}  # fmt: skip
# TensorRT's libraries carry their major in the soname (libnvinfer.so.10 in 10.x, in pip's
# site-packages/tensorrt_libs/), so a TensorRT 11 install cannot satisfy a provider that NEEDs
# libnvinfer.so.10. Not read here from an 11.x wheel: tensorrt-cu13-libs lives on pypi.nvidia.com.

# -- the extras (pyproject.toml) built on these facts; tests/core/test_trt_pins.py checks them -------

# For each TensorRT extra: the CUDA major of its wheels and whether the environment also serves ONNX
# Runtime's `--provider tensorrt` (then its TensorRT is the major every onnxruntime-gpu of that CUDA
# major links: 10). Every extra serves the project's own `--backend trt`.
TRT_EXTRAS = {
    "trt-cu12": {"cuda": 12, "ort_provider": True},
    "trt-cu13": {"cuda": 13, "ort_provider": False},  # TensorRT 11 allowed: --backend trt only
    "trt-cu13-ort": {"cuda": 13, "ort_provider": True},
}


def ort_extra(cuda: int) -> str | None:
    """The extra whose TensorRT onnxruntime-gpu's provider for this CUDA major loads."""
    return next((n for n, e in TRT_EXTRAS.items() if e["cuda"] == cuda and e["ort_provider"]), None)


# -- Jetson, JetPack 6.1 / 6.2 (L4T r36.4) ----------------------------------------------------------

JETSON_READ = (
    "read 2026-11-30 from dusty-nv/jetson-containers: packages/cuda/cuda/config.py (pip_cache(): "
    "PIP_INDEX_URL https://pypi.{INDEX_HOST}/jp{JetPack major}/cu{CUDA}, INDEX_HOST jetson-ai-lab.io), "
    "packages/numeric/numpy/config.py ('numpy<2' where CUDA <= 12.6), packages/ml/onnxruntime/"
    "install.sh (onnxruntime-gpu==VERSION from that index); issue #1283 (2025-08-14: "
    "`--index-url https://pypi.jetson-ai-lab.io/jp6/cu126` for CUDA 12.6 on 22.04); "
    "r36.4 = CUDA 12.6, cuDNN 9.3, TensorRT 10.3, Python 3.10"
)
JETSON_R36_4 = {"cuda": "12.6", "cudnn": "9.3", "tensorrt": "10.3", "python": "3.10"}
JETSON_ORT_INDEX = "https://pypi.jetson-ai-lab.io/jp6/cu126"
JETSON_ORT_VERSION = "1.23.0"  # on that index in 2025 (jetson-containers issues); check the index
JETSON_NUMPY = "numpy<2"  # the jp6/cu126 wheels are built against numpy 1.x

# -- a small ELF reader: the NEEDED entries of a shared library --------------------------------------

DT_NULL, DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_SONAME, DT_RPATH, DT_RUNPATH = 0, 1, 5, 10, 14, 15, 29
PT_LOAD, PT_DYNAMIC = 1, 2


class ElfError(ValueError):
    """Not an ELF file, or one whose dynamic section cannot be read."""


@dataclass(frozen=True)
class Dynamic:
    needed: tuple[str, ...]
    soname: str | None = None
    rpath: tuple[str, ...] = ()
    runpath: tuple[str, ...] = ()


def _segments(data: bytes, name: str) -> tuple[str, list, tuple[int, int] | None]:
    """The format of a dynamic entry, the PT_LOAD segments (vaddr, offset, size) and the
    PT_DYNAMIC segment (offset, size) of an ELF image."""
    if data[:4] != b"\x7fELF":
        raise ElfError(f"{name} is not an ELF file")
    bits, order = data[4], data[5]
    if bits not in (1, 2) or order not in (1, 2):
        raise ElfError(f"{name}: unknown ELF class {bits} or byte order {order}")
    e = "<" if order == 1 else ">"
    if bits == 2:
        phoff = struct.unpack_from(e + "Q", data, 32)[0]
        phentsize, phnum = struct.unpack_from(e + "HH", data, 54)
        ph, dyn = e + "IIQQQQQQ", e + "qQ"
    else:
        phoff = struct.unpack_from(e + "I", data, 28)[0]
        phentsize, phnum = struct.unpack_from(e + "HH", data, 42)
        ph, dyn = e + "IIIIIIII", e + "iI"
    loads, dynamic = [], None
    for i in range(phnum):
        f = struct.unpack_from(ph, data, phoff + i * phentsize)
        # (type, offset, vaddr, filesz) in either layout (64-bit puts p_flags second)
        p_type, offset, vaddr, filesz = (
            (f[0], f[2], f[3], f[5]) if bits == 2 else (f[0], f[1], f[2], f[4])
        )
        if p_type == PT_LOAD:
            loads.append((vaddr, offset, filesz))
        elif p_type == PT_DYNAMIC:
            dynamic = (offset, filesz)
    return dyn, loads, dynamic


def _entries(data: bytes, dyn: str, dynamic: tuple[int, int]) -> list[tuple[int, int]]:
    """The (tag, value) entries of the dynamic section, up to DT_NULL."""
    entries, step = [], struct.calcsize(dyn)
    for pos in range(dynamic[0], dynamic[0] + dynamic[1] - step + 1, step):
        tag, value = struct.unpack_from(dyn, data, pos)
        if tag == DT_NULL:
            break
        entries.append((tag, value))
    return entries


def _string_table(tags: dict[int, int], loads: list, name: str) -> int:
    """The file offset of DT_STRTAB's address, through the PT_LOAD segment that maps it."""
    if DT_STRTAB not in tags:
        raise ElfError(f"{name}: dynamic section without a string table")
    at = tags[DT_STRTAB]
    strtab = next((off + at - va for va, off, size in loads if va <= at < va + size), None)
    if strtab is None:
        raise ElfError(f"{name}: its string table lies outside every loaded segment")
    return strtab


def read_dynamic(data: bytes, name: str = "file") -> Dynamic:
    """NEEDED, SONAME, RPATH and RUNPATH of an ELF image, found as the loader finds them
    (PT_DYNAMIC, its DT_STRTAB mapped to a file offset through the PT_LOAD segments)."""
    try:
        dyn, loads, dynamic = _segments(data, name)
        if dynamic is None:
            return Dynamic(needed=())  # a static executable: it needs nothing
        entries = _entries(data, dyn, dynamic)
    except struct.error:
        raise ElfError(f"{name}: truncated ELF headers") from None
    tags = dict(entries)
    strtab = _string_table(tags, loads, name)

    def text(at: int) -> str:
        end = data.find(b"\0", strtab + at)
        if strtab + at >= len(data) or end < 0:
            raise ElfError(f"{name}: a dynamic string runs past the end of the file")
        return data[strtab + at : end].decode("utf-8", "replace")

    def paths(tag: int) -> tuple[str, ...]:
        return tuple(p for t, v in entries if t == tag for p in text(v).split(":") if p)

    return Dynamic(
        needed=tuple(text(v) for t, v in entries if t == DT_NEEDED),
        soname=text(tags[DT_SONAME]) if DT_SONAME in tags else None,
        rpath=paths(DT_RPATH),
        runpath=paths(DT_RUNPATH),
    )


def read_dynamic_file(path: Path) -> Dynamic:
    return read_dynamic(Path(path).read_bytes(), str(path))


def major_of(needed: tuple[str, ...], stem: str) -> int | None:
    """N of `stem.so.N[.x]` among NEEDED entries (libnvinfer -> 10), or None."""
    for lib in needed:
        m = re.fullmatch(re.escape(stem) + r"\.so\.(\d+)(\.\d+)*", lib)
        if m:
            return int(m.group(1))
    return None


def tensorrt_libraries(needed: tuple[str, ...]) -> tuple[str, ...]:
    """The TensorRT libraries among NEEDED entries (libnvinfer*, libnvonnxparser*)."""
    return tuple(lib for lib in needed if lib.startswith(("libnvinfer", "libnvonnxparser")))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_wheel(path: Path) -> dict:
    """What an onnxruntime-gpu wheel's TensorRT provider links: the facts in ORT_GPU_WHEELS."""
    with zipfile.ZipFile(path) as z:
        names = [n for n in z.namelist() if n.endswith("/" + PROVIDER_LIBRARY)]
        if not names:
            raise ElfError(f"{path} holds no {PROVIDER_LIBRARY}")
        dynamic = read_dynamic(z.read(names[0]), f"{path}:{names[0]}")
    n = dynamic.needed
    return {
        "wheel": Path(path).name,
        "sha256": _sha256(Path(path)),
        "tensorrt": major_of(n, "libnvinfer"),
        "cuda": major_of(n, "libcudart"),
        "cudnn": major_of(n, "libcudnn"),
        "needed": list(n),
    }


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m ddpm_deploy.hardware.trt_facts WHEEL [WHEEL...]", file=sys.stderr)
        return 2
    for arg in argv:
        try:
            info = read_wheel(Path(arg))
        except (OSError, zipfile.BadZipFile, ElfError) as e:
            print(f"Error: {arg}: {e}", file=sys.stderr)
            return 1
        print(f"{info['wheel']} sha256 {info['sha256']}")
        print(f"  TensorRT {info['tensorrt']}, CUDA {info['cuda']}, cuDNN {info['cudnn']}")
        print(f"  NEEDED {' '.join(info['needed'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
