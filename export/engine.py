"""TensorRT engines built through Polygraphy's loaders, cached by hardware/engine_cache.py's key."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ddpm_deploy.hardware.engine_cache import (
    INSTALL_TRT,
    BatchProfile,
    EngineKey,
    sidecar_path,
    write_sidecar,
)

from ddpm_deploy.card import image_shape, num_classes
from ddpm_deploy.errors import UserError
from ddpm_deploy.files import atomic_path, sha256_file


def require_tensorrt() -> None:
    """Fail in one line, before any work is done, where TensorRT cannot run."""
    from ddpm_deploy.hardware.gpu import has_cuda_python, has_module, import_tensorrt

    missing = [m for m in ("tensorrt", "polygraphy") if not has_module(m)]
    missing += [] if has_cuda_python() else ["cuda-python"]
    if missing:
        raise UserError(f"building an engine needs {', '.join(missing)}: {INSTALL_TRT}")
    import_tensorrt()  # one line if the bindings are broken or older than TensorRT 10


def timing_cache_path(cache_dir: Path, tensorrt: str, compute_capability: str) -> Path:
    """One timing cache per TensorRT version and GPU architecture: a cache from another is not
    merged (Polygraphy would merge it with ignore_mismatch, which TensorRT warns against)."""
    return cache_dir / f"timing.trt{tensorrt}.sm{compute_capability.replace('.', '')}.cache"


def engine_from_onnx(
    onnx_path: str | os.PathLike,
    *,
    fp16: bool,
    profile: BatchProfile,
    cache_dir: str | os.PathLike | None = None,
    workspace_mb: int | None = None,
    rebuild: bool = False,
) -> Path:
    """`build-engine`'s work: with ``fp16``, write the mixed-precision copy of the ONNX model first;
    then build or reuse its engine in ``cache_dir`` (default: engines/ beside the model)."""
    require_tensorrt()
    onnx_path = Path(onnx_path)
    cache = Path(cache_dir) if cache_dir else onnx_path.parent / "engines"
    cache.mkdir(parents=True, exist_ok=True)
    source = onnx_path
    if fp16:
        from ddpm_deploy.export.fp16 import to_fp16

        source = to_fp16(onnx_path, cache / f"{onnx_path.stem}.fp16.onnx")
    return build_or_reuse_engine(
        source, cache, profile=profile, workspace_mb=workspace_mb, rebuild=rebuild
    )


def _parse_network(trt, logger, onnx_path: Path):
    """Parse ONNX into a strongly typed network; raise with every error the parser reports."""
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse_from_file(str(onnx_path))
    errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
    if not ok or errors:
        raise UserError(
            f"TensorRT could not parse {onnx_path} ({len(errors)} error(s)): " + " | ".join(errors)
        )
    return builder, network, parser


def engine_key(onnx_path: Path, card: dict, profile: BatchProfile, tensorrt: str, gpu) -> EngineKey:
    """What the engine is only valid for: this ONNX file, TensorRT, GPU, precision and profile."""
    return EngineKey(
        sha256_file(onnx_path),
        tensorrt,
        gpu.name,
        gpu.compute_capability,
        card.get("precision", "fp32"),
        profile,
    )


def _builder_config(trt, card: dict, profile: BatchProfile, timing_cache: Path, workspace_mb):
    """Polygraphy's builder config: the batch profile of each input, the memory limit, the cache."""
    from polygraphy.backend.trt import CreateConfig, Profile

    pg_profile = Profile()
    # a class-conditional model's labels y share t's shape; guidance doubles the batch, so sampling
    # n images with --guidance other than 0 or 1 needs --max-batch of at least 2n
    inputs = ("x", "t", "y") if num_classes(card) else ("x", "t")
    for name in inputs:
        lo, opt, hi = profile.shapes(name, image_shape(card))
        pg_profile.add(name, min=lo, opt=opt, max=hi)
    limits = {trt.MemoryPoolType.WORKSPACE: workspace_mb << 20} if workspace_mb else None
    return CreateConfig(
        profiles=[pg_profile],
        memory_pool_limits=limits,
        load_timing_cache=str(timing_cache) if timing_cache.is_file() else None,
    )


def _serialize(trt, onnx_path: Path, config, timing_cache: Path) -> bytes:
    """The engine's bytes, or one line (the TensorRT log above has the rest)."""
    from polygraphy.backend.trt import engine_bytes_from_network
    from polygraphy.exception import PolygraphyException

    network = _parse_network(trt, trt.Logger(trt.Logger.WARNING), onnx_path)
    try:
        return bytes(
            engine_bytes_from_network(network, config=config, save_timing_cache=str(timing_cache))
        )
    except PolygraphyException as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"TensorRT could not build an engine from {onnx_path} ({first}); the TensorRT log "
            "above has the details (try a larger --workspace-mb or a smaller --max-batch)"
        ) from None


def build_or_reuse_engine(
    onnx_path: str | os.PathLike,
    cache_dir: str | os.PathLike,
    *,
    profile: BatchProfile,
    workspace_mb: int | None = None,
    rebuild: bool = False,
) -> Path:
    """The engine of ``onnx_path`` for this machine: from the cache under its key, or built now
    (``rebuild``: always built) with its sidecar; returns the engine's path."""
    from ddpm_deploy.hardware.gpu import current_gpu

    require_tensorrt()
    import tensorrt as trt

    from ddpm_deploy.onnx_model import read_card

    onnx_path, cache_dir = Path(onnx_path), Path(cache_dir)
    card = read_card(onnx_path)
    gpu = current_gpu()
    key = engine_key(onnx_path, card, profile, trt.__version__, gpu)
    cache_dir.mkdir(parents=True, exist_ok=True)
    engine = cache_dir / key.filename(onnx_path.stem.replace(".fp16", ""))
    if engine.is_file() and sidecar_path(engine).is_file() and not rebuild:
        return engine
    timing_cache = timing_cache_path(cache_dir, trt.__version__, gpu.compute_capability)
    config = _builder_config(trt, card, profile, timing_cache, workspace_mb)
    t0 = time.perf_counter()
    serialized = _serialize(trt, onnx_path, config, timing_cache)
    with atomic_path(engine) as tmp:
        tmp.write_bytes(serialized)
    write_sidecar(engine, key, card, time.perf_counter() - t0)
    return engine
