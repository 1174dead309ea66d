"""Triton model repositories, written as config.pbtxt text (Triton's ModelConfig protobuf).

Two kinds: the one `serve` runs (Triton's Python backend hosting this package's runtime, so the
numpy sampler runs inside the server), and the one `triton-repo` writes for the full Triton
container (the ONNX Runtime backend, optionally with its TensorRT accelerator, or a TensorRT plan):
only the denoiser there, the client runs the sampling loop (`sample --backend triton`), or, from a
sampler file (`export-sampler`), the whole sampler as one model: rows of (seed, index[, y]) to
(x0, image).
tests/serve/test_serve.py parses every file written here with tritonclient's ModelConfig protobuf.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from ddpm_deploy.runtime.triton_backend import DENOISER_MODEL  # the name clients ask for
from ddpm_deploy.serve.rows import SAMPLE_INPUTS

from ddpm_deploy.card import CARD_KEY as CARD_PARAMETER  # the card (JSON) in every config
from ddpm_deploy.card import image_shape, num_classes
from ddpm_deploy.errors import UserError
from ddpm_deploy.files import (
    check_writable,
    missing_folders,
    output_folder,
    regular_input,
    remove_made,
    staging_folder,
)
from ddpm_deploy.onnx_model import GRAPH_KEY, copy_model

SAMPLER_MODEL = "ddpm_sampler"  # triton-repo's model for a sampler file

SAMPLE_MODEL = "ddpm_sample"

# serve's model.py: Triton's Python backend imports this file and looks up TritonPythonModel
PYTHON_MODEL = "from ddpm_deploy.serve.python_model import TritonPythonModel  # noqa: F401\n"


def _q(text: str) -> str:
    return json.dumps(text)  # a protobuf text-format string: double quotes, backslash escapes


def _tensor(
    name: str, dtype: str, dims: list[int], optional: bool = False, reshape: list[int] | None = None
) -> str:
    parts = [f"name: {_q(name)}", f"data_type: {dtype}", f"dims: {dims}"]
    if reshape is not None:
        parts.append(f"reshape: {{ shape: {reshape} }}")
    if optional:
        parts.append("optional: true")
    return "  { " + " ".join(parts) + " }"


def _parameters(params: dict[str, str]) -> str:
    return "\n".join(
        f"parameters {{ key: {_q(k)} value {{ string_value: {_q(v)} }} }}"
        for k, v in params.items()
    )


def _config(
    name: str,
    head: list[str],
    inputs: list[str],
    outputs: list[str],
    max_batch: int,
    queue_delay_us: int,
    instances: str,
    params: dict[str, str],
    extra: str = "",
) -> str:
    return (
        "\n".join(
            [
                f"name: {_q(name)}",
                *head,
                f"max_batch_size: {max_batch}",
                "input [",
                ",\n".join(inputs),
                "]",
                "output [",
                ",\n".join(outputs),
                "]",
                f"dynamic_batching {{ max_queue_delay_microseconds: {queue_delay_us} }}",
                instances,
                _parameters(params),
                extra,
            ]
        ).rstrip()
        + "\n"
    )


def _denoiser_io(card: dict, reshape_scalars: bool) -> tuple[list[str], list[str]]:
    """x [C,H,W], t and y one value per row. ONNX files take t: int64[N], so the full-Triton
    configs reshape Triton's [1] per row to a scalar; the Python backend gets [N,1] and flattens."""
    shape = list(image_shape(card))
    scalar = [] if reshape_scalars else None
    inputs = [_tensor("x", "TYPE_FP32", shape), _tensor("t", "TYPE_INT64", [1], reshape=scalar)]
    if card.get("arch", {}).get("num_classes"):
        inputs.append(_tensor("y", "TYPE_INT64", [1], optional=not reshape_scalars, reshape=scalar))
    return inputs, [_tensor("eps", "TYPE_FP32", shape)]


def _sampler_io(card: dict) -> tuple[list[str], list[str]]:
    """A sampler file's rows: seed and index (or x_T, `noise` [C,H,W]) and y, one value per row,
    Triton's [1] reshaped to the file's int64[N]. Each row carries its own seed: the file's seed is
    int64[S], S = 1 or N, and a dynamic batch of rows from several requests feeds it S = N."""
    c, h, w = image_shape(card)
    names = ["seed", "index"] if card[GRAPH_KEY].get("noise") == "seed" else []
    names += ["y"] if num_classes(card) else []
    inputs = [_tensor(name, "TYPE_INT64", [1], reshape=[]) for name in names]
    if card[GRAPH_KEY].get("noise") != "seed":
        inputs.insert(0, _tensor("noise", "TYPE_FP32", [c, h, w]))
    outputs = [_tensor("x0", "TYPE_FP32", [c, h, w]), _tensor("image", "TYPE_UINT8", [h, w, c])]
    return inputs, outputs


def write_serve_repository(
    root: Path,
    card: dict,
    model: str,
    backend: str,
    backend_options: dict,
    max_images: int,
    queue_delay_us: int,
    batch: int = 16,
) -> None:
    """The repository `serve` runs: ddpm_sample and ddpm_denoiser on Triton's Python backend."""
    params = {
        "model": model,
        "backend": backend,
        "backend_options": json.dumps(backend_options),
        CARD_PARAMETER: json.dumps(card),
    }
    shape = list(image_shape(card))
    num_classes = card.get("arch", {}).get("num_classes", 0)
    sample_inputs = [
        _tensor(name, dtype, [1], optional=not required)
        for name, (dtype, required) in SAMPLE_INPUTS.items()
        if name != "class" or num_classes
    ]
    sample_outputs = [_tensor("image", "TYPE_UINT8", shape), _tensor("sample", "TYPE_FP32", shape)]
    cpu = "instance_group [ { count: 1 kind: KIND_CPU } ]"
    models = {
        SAMPLE_MODEL: (
            sample_inputs,
            sample_outputs,
            {**params, "service": "sample", "batch": str(batch)},
        ),
        DENOISER_MODEL: (
            *_denoiser_io(card, reshape_scalars=False),
            {**params, "service": "denoiser"},
        ),
    }
    for name, (inputs, outputs, p) in models.items():
        folder = root / name
        (folder / "1").mkdir(parents=True)
        head = ['backend: "python"']
        (folder / "config.pbtxt").write_text(
            _config(name, head, inputs, outputs, max_images, queue_delay_us, cpu, p)
        )
        (folder / "1" / "model.py").write_text(PYTHON_MODEL)


@dataclass(frozen=True)
class TritonRepoOptions:
    """`triton-repo`'s settings, checked together (``check``) and passed as one object."""

    model: str
    out: str
    engine: str | None = None  # also a tensorrt_plan model from this engine
    max_batch: int = 64
    queue_delay_us: int = 5000
    instances: int = 1
    kind: str = "gpu"  # gpu or cpu instances
    trt_accelerator: bool = False  # ONNX Runtime's TensorRT execution accelerator (fp16)

    def check(self, card: dict, onnx_path: Path) -> None:
        target = Path(self.out)
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise UserError(f"{target} already exists and is not an empty folder; pass a new -o")
        if self.engine is not None and not regular_input(self.engine, "--engine").is_file():
            raise UserError(
                f"no engine file at {self.engine}; build one with `ddpm-deploy build-engine`"
            )
        if self.max_batch < 1 or self.instances < 1 or self.queue_delay_us < 0:
            raise UserError("--max-batch and --instances must be >= 1, --queue-delay-us >= 0")
        if self.trt_accelerator and self.kind != "gpu":
            raise UserError("--trt-accelerator runs on GPU instances; drop it or use --kind gpu")
        if GRAPH_KEY in card and (self.engine is not None or self.trt_accelerator):
            raise UserError(
                f"{onnx_path} is a sampler file (export-sampler): it is served whole on the ONNX "
                "Runtime backend; --engine and --trt-accelerator are for a denoiser model.onnx"
            )


def write_triton_repository(
    root: Path, card: dict, onnx_path: Path, opts: TritonRepoOptions
) -> list[Path]:
    """`triton-repo`: ddpm_denoiser on the ONNX Runtime backend (optionally through its TensorRT
    execution accelerator, fp16) and, from an engine, ddpm_denoiser_trt on the TensorRT backend;
    from a sampler file, ddpm_sampler (the whole sampler) on the ONNX Runtime backend."""
    kind = "KIND_GPU" if opts.kind == "gpu" else "KIND_CPU"
    group = f"instance_group [ {{ count: {opts.instances} kind: {kind} }} ]"
    params = {CARD_PARAMETER: json.dumps(card)}
    accel = ""
    if opts.trt_accelerator:
        accel = (
            "optimization { execution_accelerators { gpu_execution_accelerator: [ { "
            'name: "tensorrt" parameters { key: "precision_mode" value: "FP16" } '
            'parameters { key: "max_workspace_size_bytes" value: "1073741824" } '
            'parameters { key: "trt_engine_cache_enable" value: "true" } } ] } }'
        )
    written = []
    sampler = GRAPH_KEY in card  # a sampler file: the whole sampler, one model
    io = _sampler_io(card) if sampler else _denoiser_io(card, reshape_scalars=True)
    name = SAMPLER_MODEL if sampler else DENOISER_MODEL
    models = [(name, 'platform: "onnxruntime_onnx"', onnx_path, "model.onnx", accel, io)]
    if opts.engine is not None:
        plan = 'platform: "tensorrt_plan"'
        models.append((DENOISER_MODEL + "_trt", plan, Path(opts.engine), "model.plan", "", io))
    for name, platform, source, filename, extra, (inputs, outputs) in models:
        folder = root / name
        (folder / "1").mkdir(parents=True)
        if filename == "model.onnx":  # with its external data merged in, if it has any
            copy_model(source, folder / "1" / filename, "triton-repo")
        else:
            shutil.copyfile(source, folder / "1" / filename)
        config = folder / "config.pbtxt"
        text = _config(
            name,
            [platform],
            inputs,
            outputs,
            opts.max_batch,
            opts.queue_delay_us,
            group,
            params,
            extra,
        )
        config.write_text(text)
        written.append(config)
    return written


def triton_repo(opts: TritonRepoOptions) -> list[Path]:
    """`ddpm-deploy triton-repo`: check everything, write into a hidden sibling, then rename."""
    from ddpm_deploy.onnx_model import read_card
    from ddpm_deploy.shipped import resolve_model

    onnx_path = resolve_model(opts.model)
    card = read_card(onnx_path)  # one line if the file is not a ddpm-deploy model
    target = output_folder(opts.out)
    opts.check(card, onnx_path)
    check_writable(target, "-o")
    made = missing_folders(target.parent)  # -o's missing parents, removed again on a failure
    target.resolve().parent.mkdir(parents=True, exist_ok=True)
    staging = staging_folder(target.resolve().parent, target.name)
    try:
        written = write_triton_repository(staging, card, onnx_path, opts)
        if target.exists():
            target.rmdir()
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        remove_made(made)
        raise
    return [target / p.relative_to(staging) for p in written]
