"""TensorRT engines built through Polygraphy's loaders, cached by runtime/engine_cache.py's key."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ddpm_deploy.runtime.engine_cache import (
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
    from ddpm_deploy.gpu import has_cuda_python, has_module, import_tensorrt

    missing = [m for m in ("tensorrt", "polygraphy") if not has_module(m)]
    missing += [] if has_cuda_python() else ["cuda-python"]
    if missing:
        raise UserError(f"building an engine needs {', '.join(missing)}: {INSTALL_TRT}")
    import_tensorrt()  # one line if the bindings are broken or older than TensorRT 10


def timing_cache_path(cache_dir: Path, tensorrt: str, compute_capability: str) -> Path:
    """One timing cache per TensorRT version and GPU architecture: a cache from another is not
    merged (Polygraphy would merge it with ignore_mismatch, which TensorRT warns against)."""
    return cache_dir / f"timing.trt{tensorrt}.sm{compute_capability.replace('.', '')}.cache"


def build(
    onnx_path: str | os.PathLike,
    *,
    fp16: bool,
    profile: BatchProfile,
    cache_dir: str | os.PathLike | None = None,
    workspace_mb: int | None = None,
    rebuild: bool = False,
) -> Path:
    """`build-engine`: optionally write the mixed-precision ONNX model, then build or reuse the engine."""
    require_tensorrt()
    onnx_path = Path(onnx_path)
    cache = Path(cache_dir) if cache_dir else onnx_path.parent / "engines"
    cache.mkdir(parents=True, exist_ok=True)
    source = onnx_path
    if fp16:
        from ddpm_deploy.export.fp16 import to_fp16

        source = to_fp16(onnx_path, cache / f"{onnx_path.stem}.fp16.onnx")
    return build_engine(source, cache, profile=profile, workspace_mb=workspace_mb, rebuild=rebuild)


def _parse(trt, logger, onnx_path: Path):
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


def build_engine(
    onnx_path: str | os.PathLike,
    cache_dir: str | os.PathLike,
    *,
    profile: BatchProfile,
    workspace_mb: int | None = None,
    rebuild: bool = False,
) -> Path:
    """Build (or reuse from the cache) an engine for this machine; returns the engine's path."""
    from ddpm_deploy.gpu import current_gpu

    require_tensorrt()
    import tensorrt as trt
    from polygraphy.backend.trt import CreateConfig, Profile, engine_bytes_from_network
    from polygraphy.exception import PolygraphyException

    from ddpm_deploy.onnx_model import read_card

    onnx_path = Path(onnx_path)
    card = read_card(onnx_path)
    precision = card.get("precision", "fp32")
    gpu = current_gpu()
    key = EngineKey(
        sha256_file(onnx_path),
        trt.__version__,
        gpu.name,
        gpu.compute_capability,
        precision,
        profile,
    )
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    engine = cache_dir / key.filename(onnx_path.stem.replace(".fp16", ""))
    if engine.is_file() and sidecar_path(engine).is_file() and not rebuild:
        return engine

    logger = trt.Logger(trt.Logger.WARNING)
    pg_profile = Profile()
    # a class-conditional model's labels y share t's shape; guidance doubles the batch, so sampling
    # n images with --guidance other than 0 or 1 needs --max-batch of at least 2n
    inputs = ("x", "t", "y") if num_classes(card) else ("x", "t")
    for name in inputs:
        lo, opt, hi = profile.shapes(name, image_shape(card))
        pg_profile.add(name, min=lo, opt=opt, max=hi)
    timing_cache = timing_cache_path(cache_dir, trt.__version__, gpu.compute_capability)
    limits = {trt.MemoryPoolType.WORKSPACE: workspace_mb << 20} if workspace_mb else None
    config = CreateConfig(
        profiles=[pg_profile],
        memory_pool_limits=limits,
        load_timing_cache=str(timing_cache) if timing_cache.is_file() else None,
    )
    t0 = time.perf_counter()
    network = _parse(trt, logger, onnx_path)
    try:
        serialized = engine_bytes_from_network(
            network, config=config, save_timing_cache=str(timing_cache)
        )
    except PolygraphyException as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"TensorRT could not build an engine from {onnx_path} ({first}); the TensorRT log "
            "above has the details (try a larger --workspace-mb or a smaller --max-batch)"
        ) from None
    with atomic_path(engine) as tmp:
        tmp.write_bytes(bytes(serialized))
    write_sidecar(engine, key, card, time.perf_counter() - t0)
    return engine
