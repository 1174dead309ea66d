"""`doctor` on onnxruntime-gpu's TensorRT provider, and the ELF reader it uses: with synthetic ELF
files and a faked installation (onnxruntime-gpu cannot be installed where the tests run)."""

from __future__ import annotations

import importlib.metadata as md
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from ddpm_deploy.hardware import doctor, libraries, trt_facts
from ddpm_deploy.hardware.trt_facts import ElfError, major_of, read_dynamic, read_dynamic_file

# what onnxruntime-gpu 1.31.1's libonnxruntime_providers_tensorrt.so NEEDs (readelf -d)
NEEDED_1_31_1 = (
    "libcublas.so.13", "libdl.so.2", "libnvinfer.so.10", "libnvonnxparser.so.10", "libcudart.so.13",
    "librt.so.1", "libcudnn.so.9", "libpthread.so.0", "libstdc++.so.6", "libm.so.6",
    "libgcc_s.so.1", "libc.so.6", "ld-linux-x86-64.so.2",
)  # fmt: skip


def make_elf(needed, *, bits=64, order="<", runpath=None, soname=None, base=0x400000) -> bytes:
    """A minimal ELF shared object: one PT_LOAD (mapped at `base`, so the string table's address
    differs from its file offset, as in real libraries) and a PT_DYNAMIC."""
    strtab, at = b"\0", {}
    for s in (*needed, runpath, soname):
        if s and s not in at:
            at[s], strtab = len(strtab), strtab + s.encode() + b"\0"
    ehsize, phentsize = (64, 56) if bits == 64 else (52, 32)
    dyn_off = ehsize + 2 * phentsize
    entries = [(trt_facts.DT_NEEDED, at[n]) for n in needed]
    entries += [(trt_facts.DT_RUNPATH, at[runpath])] if runpath else []
    entries += [(trt_facts.DT_SONAME, at[soname])] if soname else []
    dyn_fmt = order + ("qQ" if bits == 64 else "iI")
    dyn_size = (len(entries) + 3) * struct.calcsize(dyn_fmt)
    str_off = dyn_off + dyn_size
    entries += [(trt_facts.DT_STRTAB, base + str_off), (trt_facts.DT_STRSZ, len(strtab)), (0, 0)]
    dynamic = b"".join(struct.pack(dyn_fmt, t, v) for t, v in entries)
    total = str_off + len(strtab)
    ident = b"\x7fELF" + bytes([2 if bits == 64 else 1, 1 if order == "<" else 2, 1]) + bytes(9)
    if bits == 64:
        header = struct.pack(
            order + "HHIQQQIHHHHHH", 3, 62, 1, 0, ehsize, 0, 0, ehsize, phentsize, 2, 64, 0, 0
        )
        ph = order + "IIQQQQQQ"
        load = struct.pack(ph, 1, 5, 0, base, base, total, total, 0x1000)
        dyn = struct.pack(ph, 2, 6, dyn_off, base + dyn_off, base + dyn_off, dyn_size, dyn_size, 8)
    else:
        header = struct.pack(
            order + "HHIIIIIHHHHHH", 3, 40, 1, 0, ehsize, 0, 0, ehsize, phentsize, 2, 40, 0, 0
        )
        ph = order + "IIIIIIII"
        load = struct.pack(ph, 1, 0, base, base, total, total, 5, 0x1000)
        dyn = struct.pack(ph, 2, dyn_off, base + dyn_off, base + dyn_off, dyn_size, dyn_size, 6, 4)
    return ident + header + load + dyn + dynamic + strtab


# -- the ELF reader ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bits,order", [(64, "<"), (64, ">"), (32, "<"), (32, ">")])
def test_the_reader_finds_needed_runpath_and_soname(bits, order):
    data = make_elf(
        NEEDED_1_31_1, bits=bits, order=order, runpath="$ORIGIN:/opt/x", soname="libp.so"
    )
    d = read_dynamic(data)
    assert d.needed == NEEDED_1_31_1
    assert d.runpath == ("$ORIGIN", "/opt/x") and d.rpath == () and d.soname == "libp.so"
    assert major_of(d.needed, "libnvinfer") == 10 and major_of(d.needed, "libcudart") == 13
    assert trt_facts.tensorrt_libraries(d.needed) == ("libnvinfer.so.10", "libnvonnxparser.so.10")


def test_major_of_matches_whole_names_only():
    assert major_of(("libnvinfer_plugin.so.10",), "libnvinfer") is None
    assert major_of(("libcudart.so.11.0",), "libcudart") == 11
    assert major_of((), "libnvinfer") is None


def test_the_reader_agrees_with_readelf_on_a_real_library():
    readelf = shutil.which("readelf")
    libs = sorted(Path(sys.executable).resolve().parents[1].glob("lib/python3*/lib-dynload/*.so"))
    libs += sorted(
        Path(md.distribution("onnxruntime").locate_file("onnxruntime/capi")).glob("*.so*")
    )
    if not readelf or not libs:
        pytest.skip("needs readelf and a shared library to compare")
    lib = libs[-1]
    out = subprocess.run([readelf, "-d", str(lib)], capture_output=True, text=True).stdout
    expected = tuple(
        line.split("[")[1].rstrip("]") for line in out.splitlines() if "(NEEDED)" in line
    )
    assert expected and read_dynamic_file(lib).needed == expected


@pytest.mark.parametrize(
    "data,says",
    [
        (b"MZ\x90\x00" + bytes(60), "is not an ELF file"),
        (make_elf(("libc.so.6",))[:80], "truncated"),
        (make_elf(("libc.so.6",), base=0)[:-4], "past the end"),
    ],
)
def test_bad_files_raise_one_clear_error(data, says):
    with pytest.raises(ElfError, match=says):
        read_dynamic(data, "x.so")


def test_a_string_table_outside_the_loaded_segments_is_refused():
    data = bytearray(make_elf(("libc.so.6",)))
    # move the load segment's address so DT_STRTAB no longer falls inside it
    struct.pack_into("<Q", data, 64 + 16, 0x900000)
    with pytest.raises(ElfError, match="outside every loaded segment"):
        read_dynamic(bytes(data))


def wheel(tmp_path: Path, needed=NEEDED_1_31_1) -> Path:
    path = tmp_path / "onnxruntime_gpu-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("onnxruntime/capi/libonnxruntime_providers_tensorrt.so", make_elf(needed))
        z.writestr("onnxruntime/__init__.py", "")
    return path


def test_the_facts_command_reads_a_wheel(tmp_path, capsys):
    assert trt_facts.main([str(wheel(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "TensorRT 10, CUDA 13, cuDNN 9" in out and "libnvonnxparser.so.10" in out


def test_the_facts_command_on_bad_input_says_one_line(tmp_path, capsys):
    (tmp_path / "x.whl").write_text("not a zip")
    assert trt_facts.main([str(tmp_path / "x.whl")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and err.count("\n") == 1
    empty = tmp_path / "empty.whl"
    zipfile.ZipFile(empty, "w").close()
    assert trt_facts.main([str(empty)]) == 1
    assert "holds no libonnxruntime_providers_tensorrt.so" in capsys.readouterr().err
    assert trt_facts.main([]) == 2


# -- doctor -------------------------------------------------------------------------------------------


@pytest.fixture
def isolated(monkeypatch):
    """No ldconfig cache, default folders or pip TensorRT: only what a test puts in place."""
    monkeypatch.setattr(libraries, "_ldconfig_cache", dict)
    monkeypatch.setattr(libraries, "DEFAULT_LIB_DIRS", ())
    monkeypatch.setattr(libraries, "_pip_tensorrt_libs", list)
    monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)
    return monkeypatch


def installed(monkeypatch, tmp_path: Path, data: bytes | None, version="1.31.1") -> Path:
    capi = tmp_path / "site" / "onnxruntime" / "capi"
    capi.mkdir(parents=True)
    library = capi / "libonnxruntime_providers_tensorrt.so"
    if data is not None:
        library.write_bytes(data)
    monkeypatch.setattr(doctor, "_provider_library", lambda: (version, library))
    return library


def test_without_onnxruntime_gpu_doctor_says_nothing_and_does_not_fail():
    try:
        md.version("onnxruntime-gpu")
        pytest.skip("onnxruntime-gpu is installed here")
    except md.PackageNotFoundError:
        pass
    assert doctor._provider_library() is None
    assert doctor._ort_tensorrt_provider("10.3.0") is None


def test_the_provider_library_is_found_in_the_distributions_files(monkeypatch, tmp_path):
    class FakeDist:
        version = "1.31.1"
        files = [
            md.PackagePath("onnxruntime/__init__.py"),
            md.PackagePath("onnxruntime/capi/libonnxruntime_providers_tensorrt.so"),
        ]

        def locate_file(self, f):
            return tmp_path / f

    monkeypatch.setattr(doctor.md, "distribution", lambda name: FakeDist())
    version, lib = doctor._provider_library()
    assert version == "1.31.1"
    assert lib == tmp_path / "onnxruntime/capi/libonnxruntime_providers_tensorrt.so"
    FakeDist.files = FakeDist.files[:1]
    assert doctor._provider_library() == ("1.31.1", None)


def test_doctor_names_the_tensorrt_major_and_what_is_missing(isolated, tmp_path):
    installed(isolated, tmp_path, make_elf(NEEDED_1_31_1))
    libdir = tmp_path / "trt"
    libdir.mkdir()
    (libdir / "libnvinfer.so.10").write_bytes(b"")
    isolated.setenv("LD_LIBRARY_PATH", f"/nonexistent:{libdir}")
    p = doctor._ort_tensorrt_provider(None)
    assert (p["tensorrt"], p["cuda"]) == (10, 13)
    assert p["libraries"] == {
        "libnvinfer.so.10": f"found ({libdir / 'libnvinfer.so.10'})",
        "libnvonnxparser.so.10": "not found",
    }
    assert p["state"] == "libnvonnxparser.so.10 not found"
    line = doctor._ort_trt_line(p)
    assert line.startswith("of onnxruntime-gpu 1.31.1 needs TensorRT 10 (CUDA 13; libnvinfer.so.10")


def test_doctor_says_ready_only_when_both_are_found_and_tensorrt_is_that_major(isolated, tmp_path):
    library = installed(isolated, tmp_path, make_elf(NEEDED_1_31_1, runpath="$ORIGIN/../trt"))
    trt = library.parent.parent / "trt"  # found through DT_RUNPATH with $ORIGIN
    trt.mkdir()
    for name in ("libnvinfer.so.10", "libnvonnxparser.so.10"):
        (trt / name).write_bytes(b"")
    assert doctor._ort_tensorrt_provider("10.16.1")["state"] == "its TensorRT libraries are found"
    state = doctor._ort_tensorrt_provider("11.4.0")["state"]
    assert state == "the installed TensorRT 11.4.0 is not 10.x (install the trt-cu13-ort extra)"


def test_pip_tensorrt_outside_the_loader_path_is_named(isolated, tmp_path):
    installed(isolated, tmp_path, make_elf(NEEDED_1_31_1))
    pip_libs = tmp_path / "site" / "tensorrt_libs"
    pip_libs.mkdir()
    for name in ("libnvinfer.so.10", "libnvonnxparser.so.10"):
        (pip_libs / name).write_bytes(b"")
    isolated.setattr(libraries, "_pip_tensorrt_libs", lambda: [pip_libs])
    p = doctor._ort_tensorrt_provider(None)
    assert all(f"only in pip's {pip_libs}" in s for s in p["libraries"].values())
    assert "LD_LIBRARY_PATH" in p["state"]


def test_the_ldconfig_cache_counts_as_found(isolated, tmp_path):
    installed(isolated, tmp_path, make_elf(NEEDED_1_31_1))
    for name in ("libnvinfer.so.10", "libnvonnxparser.so.10"):
        (tmp_path / name).write_bytes(b"")
    cache = {n: str(tmp_path / n) for n in ("libnvinfer.so.10", "libnvonnxparser.so.10")}
    isolated.setattr(libraries, "_ldconfig_cache", lambda: cache)
    assert doctor._ort_tensorrt_provider(None)["state"] == "its TensorRT libraries are found"


@pytest.mark.parametrize(
    "data,says",
    [
        (None, "onnxruntime-gpu 1.31.1 has no libonnxruntime_providers_tensorrt.so"),
        (b"garbage", "could not read libonnxruntime_providers_tensorrt.so: "),
        (make_elf(("libc.so.6",)), "links no libnvinfer"),
    ],
)
def test_odd_installations_are_reported_not_raised(isolated, tmp_path, data, says):
    installed(isolated, tmp_path, data)
    p = doctor._ort_tensorrt_provider(None)
    assert says in p["state"] and says in doctor._ort_trt_line(p)


def test_the_doctor_report_carries_the_line(isolated, tmp_path):
    installed(isolated, tmp_path, make_elf(NEEDED_1_31_1))
    info = doctor.collect()
    assert info["onnxruntime"]["tensorrt_provider"]["tensorrt"] == 10
    text = doctor.report(info)
    assert "  TensorRT provider of onnxruntime-gpu 1.31.1 needs TensorRT 10 (CUDA 13;" in text


def test_the_ldconfig_output_is_parsed(monkeypatch):
    out = (
        "602 libs found in cache `/etc/ld.so.cache'\n"
        "\tlibnvinfer.so.10 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libnvinfer.so.10\n"
        "\tlibc.so.6 (libc6,x86-64, OS ABI: Linux 3.2.0) => /lib/x86_64-linux-gnu/libc.so.6\n"
    )
    monkeypatch.setattr(
        libraries.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, out, "")
    )
    assert libraries._ldconfig_cache() == {
        "libnvinfer.so.10": "/usr/lib/x86_64-linux-gnu/libnvinfer.so.10",
        "libc.so.6": "/lib/x86_64-linux-gnu/libc.so.6",
    }
