"""What `ddpm-deploy bench` runs, from its options as typed: backend specs (``NAME[:PRECISION]``)
to denoisers, batch sizes checked, the model's FLOPs; the timing itself is runtime/bench.py."""

from __future__ import annotations

import sys
from collections.abc import Callable

from ddpm_deploy.runtime.backends import ONNX_BACKENDS, TAKES, Denoiser, model_path, open_denoiser
from ddpm_deploy.runtime.bench import BenchRow, bench

from ddpm_deploy.bounds import OPTION_BOUNDS
from ddpm_deploy.errors import UserError


def open_int8(spec: str, int8_model: str | None, **given) -> Denoiser:
    """The ``NAME:int8`` row's denoiser: the QDQ file ``int8_model``, which must be one."""
    name = spec.partition(":")[0]
    if int8_model is None:
        raise UserError(f"{spec} needs --int8-model (a QDQ file from `ddpm-deploy quantize`)")
    if name not in ONNX_BACKENDS:
        raise UserError(f"{spec}: int8 QDQ files run on ort and openvino only")
    den = open_denoiser(name, int8_model, **given)
    if den.card.get("precision") != "int8":  # a row labelled int8 must be int8
        raise UserError(
            f"--int8-model {int8_model} is a {den.card.get('precision', 'fp32')} model; pass the "
            "QDQ file `ddpm-deploy quantize` wrote"
        )
    return den


def load_for_bench(
    backends: list[str],
    model: str,
    checkpoint: str | None,
    int8_model: str | None = None,
    **given,
) -> dict[str, Denoiser]:
    """Denoisers by backend spec ``NAME[:PRECISION]``: ``ort``, ``ort:int8``, ``openvino:bf16``,
    ``openvino:int8``, ``torch``... ``int8`` runs the QDQ file ``int8_model`` (from `quantize`).
    ``given``: the model-and-backend options (provider, device, threads, url...), each passed to
    the backends that take it (runtime/backends.py TAKES)."""
    url = given.pop("url", None)
    for option, default in (("provider", "cpu"), ("device", "cpu")):
        if given.get(option, default) == default:
            given.pop(option, None)
    unused = [
        k
        for k, v in given.items()
        if v
        and not any(
            k in TAKES[s.partition(":")[0]] for s in backends if s.partition(":")[0] in TAKES
        )
    ]
    if unused:
        raise UserError(
            f"--{unused[0].replace('_', '-')} applies to none of the backends {backends}"
        )
    dens = {}
    for spec in backends:
        name, _, precision = spec.partition(":")
        precision = precision or "fp32"
        if precision == "int8":
            dens[spec] = open_int8(spec, int8_model, **given)
        elif name == "torch":
            if checkpoint is None:
                raise UserError("the torch backend needs --checkpoint (a training checkpoint)")
            dens[spec] = open_denoiser("torch", checkpoint, **given)
        elif name == "triton":
            if url is None:
                raise UserError("the triton backend needs --url HOST:PORT (a `ddpm-deploy serve`)")
            dens[spec] = open_denoiser("triton", url)
        elif precision != "fp32" and name != "openvino":
            raise UserError(
                f"{spec}: {name} offers fp32 here (bf16: openvino; int8: ort, openvino)"
            )
        else:
            dens[spec] = open_denoiser(name, model, precision, **given)
        if dens[spec].whole_sampler:
            raise UserError(
                f"{model} holds its whole sampler (`export-sampler`); bench times the network "
                "calls of the numpy loop: bench the model it came from, or time the file with "
                "`python benchmarks/sampler_graph.py`"
            )
    return dens


def flops_or_none(onnx_path, warn: Callable[[str], None]) -> int | None:
    """FLOPs per image of ``onnx_path``, or None (and a warning) where onnx is not installed."""
    try:
        from ddpm_deploy.runtime.flops import count_flops

        return count_flops(onnx_path)["total"]
    except ModuleNotFoundError:
        warn("(onnx not installed: FLOP/s columns need `pip install 'ddpm-deploy[export]'`)")
        return None


def bench_specs(
    model: str,
    backends: str,
    batches: str,
    checkpoint: str | None = None,
    int8_model: str | None = None,
    steps: int = 50,
    rounds: int = 3,
    warn: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
    **given,
) -> tuple[list[BenchRow], dict]:
    """`ddpm-deploy bench`: ``backends`` and ``batches`` as typed (comma-separated backend specs,
    batch sizes); ``model`` a shipped name or an ONNX file."""
    try:
        sizes = [int(b) for b in batches.split(",")]
    except ValueError:
        raise UserError(f"--batch takes comma-separated integers, got {batches!r}") from None
    top = int(OPTION_BOUNDS["batch"])  # what `sample --batch` takes
    if not all(1 <= b <= top for b in sizes):
        raise UserError(f"--batch sizes must be between 1 and {top:,}, got {batches!r}")
    names = [b.strip() for b in backends.split(",") if b.strip()]
    onnx_path = model_path("ort", model)  # a shipped name or an .onnx file, as `sample` reads it
    denoisers = load_for_bench(names, str(onnx_path), checkpoint, int8_model, **given)
    flops = flops_or_none(onnx_path, warn)
    return bench(denoisers, sizes, steps=steps, rounds=rounds, flops_per_image=flops)
