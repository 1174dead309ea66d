"""What `export` and `build-engine` run: a checkpoint to ONNX with parity, then (with an engine
profile) a TensorRT engine for this GPU."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class EngineOptions:
    """The batch profile and cache of one engine build (the `--min-batch` ... `--rebuild` options)."""

    min_batch: int = 1
    opt_batch: int = 16
    max_batch: int = 100
    workspace_mb: int | None = None
    cache: str | None = None
    rebuild: bool = False


def engine_for(
    onnx_path: str | os.PathLike, fp16: bool, options: EngineOptions, echo: Callable = print
) -> Path:
    """Build (or take from the cache) the engine of ``onnx_path``; says where it is."""
    from ddpm_deploy.export.engine import engine_from_onnx
    from ddpm_deploy.hardware.engine_cache import BatchProfile

    engine = engine_from_onnx(
        onnx_path,
        fp16=fp16,
        profile=BatchProfile(options.min_batch, options.opt_batch, options.max_batch),
        cache_dir=options.cache,
        workspace_mb=options.workspace_mb,
        rebuild=options.rebuild,
    )
    echo(f"engine {engine} (sidecar {engine.with_suffix('.json').name})")
    return engine


def export_model(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    verify: bool = True,
    weights: str = "auto",
    engine: EngineOptions | None = None,
    echo: Callable = print,
) -> Path | None:
    """Export ``checkpoint`` to ``out``, echoing each parity case; with ``engine``, then build a
    TensorRT FP16 engine from it (TensorRT is checked first, so nothing is written without it).
    Returns the engine's path, if one was built."""
    from ddpm_deploy.export.onnx_export import export_onnx

    if engine is not None:
        from ddpm_deploy.export.engine import require_tensorrt
        from ddpm_deploy.hardware.engine_cache import BatchProfile

        BatchProfile(engine.min_batch, engine.opt_batch, engine.max_batch)  # checked first
        require_tensorrt()
    for case in export_onnx(checkpoint, out, verify=verify, weights=weights):
        echo(str(case))
    echo(f"wrote {out}" + ("" if verify else " (parity not checked: --no-verify)"))
    return None if engine is None else engine_for(out, True, engine, echo)
