"""The ddpm-deploy command line. Thin on purpose: each command parses options and calls one library
function (docs/ARCHITECTURE.md, invariant 5). Heavy imports (torch, onnx) happen inside the commands that need them,
so `ddpm-deploy sample --backend ort` runs where torch is not installed."""

from __future__ import annotations

import functools
import json
import sys

import click

from ddpm_deploy import __version__
from ddpm_deploy.errors import UserError
from ddpm_deploy.runtime.guidance import DEFAULT_GUIDANCE


def friendly_errors(fn):
    """Turn a UserError, or a missing optional dependency, into one line and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            raise click.ClickException(str(e)) from None
        except ModuleNotFoundError as e:
            extra = (
                "export" if e.name in ("onnx", "onnxscript", "onnxconverter_common") else "train"
            )
            raise click.ClickException(
                f"this command needs the {e.name!r} package; install it with "
                f"`pip install 'ddpm-deploy[{extra}]'`"
            ) from None

    return wrapper


@click.group(context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ddpm-deploy")
def main() -> None:
    """Train a DDPM, export it to ONNX, and sample it on any CPU or GPU."""


DATASET = click.option(
    "--dataset", default="fashion_mnist", help="fashion_mnist (alias fashion) or mnist."
)
DATA_ROOT = click.option(
    "--data-root",
    envvar="DDPM_DEPLOY_DATA",
    show_envvar=True,
    default=None,
    help="Folder with the IDX files (torchvision layout or plain). [default: ./data]",
)


@main.command()
@DATASET
@DATA_ROOT
@click.option(
    "--out", default="runs/fashion_mnist", help="Folder for checkpoints, loss.csv, loss.png."
)
@click.option(
    "--arch",
    default="resunet",
    help="resunet (residual UNet, the shipped models) or reference (the seed article's UNet).",
)
@click.option(
    "--cond",
    is_flag=True,
    help="Class-conditional with a null label, for classifier-free guidance (resunet only).",
)
@click.option(
    "--cond-drop", default=0.1, type=float, help="With --cond: share of labels trained as null."
)
@click.option("--base", default=None, type=int, help="resunet base width. [default: 32]")
@click.option("--dropout", default=None, type=float, help="resunet dropout. [default: 0]")
@click.option("--epochs", default=20, type=int)
@click.option("--batch-size", default=128, type=int)
@click.option("--lr", default=1e-3, type=float, help="Adam learning rate.")
@click.option("--warmup", default=0, type=int, help="Steps of linear learning-rate warm-up.")
@click.option("--seed", default=0, type=int, help="Fixes every random number of the run.")
@click.option(
    "--ema", default=None, type=float, help="EMA decay of the weights (e.g. 0.999). [default: off]"
)
@click.option(
    "--ema-warmup/--no-ema-warmup",
    default=True,
    help="EMA decay min(--ema, (1+n)/(10+n)) at step n, so early averages forget the init.",
)
@click.option("--threads", default=None, type=int, help="torch CPU threads. [default: torch's]")
@click.option("--schedule", default="linear", help="Noise schedule: linear or cosine.")
@click.option("--device", default="auto", help="auto, cpu or cuda.")
@click.option("--limit", default=None, type=int, help="Train on the first N images only.")
@click.option(
    "--download/--no-download", default=True, help="Download the dataset if it is missing."
)
@click.option(
    "--distributed",
    is_flag=True,
    help="DistributedDataParallel under torchrun (gloo on CPU, nccl on GPU); --batch-size is global.",
)
@click.option(
    "--resume",
    "resume_dir",
    default=None,
    help="Continue the run in this folder from its last.safetensors; its settings are kept, "
    "only --epochs, --device and --data-root apply.",
)
@friendly_errors
def train(resume_dir, **options) -> None:
    """Train a DDPM noise predictor on Fashion-MNIST or MNIST.

    Writes best.safetensors (lowest epoch loss), last.safetensors (resumable), card.json,
    loss.csv and loss.png to --out.
    """
    from ddpm_deploy.train.loop import TrainConfig, saved_config
    from ddpm_deploy.train.loop import train as run

    if resume_dir is not None:
        ctx = click.get_current_context()
        cfg = saved_config(resume_dir)
        for name in ("arch", "cond"):
            typed = ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
            if typed and options[name] != getattr(cfg, name):
                raise UserError(
                    f"--resume: {resume_dir} was trained with --{name} {getattr(cfg, name)}, not "
                    f"{options[name]}; drop --{name} or start a new run in another --out"
                )
        for name in ("epochs", "device", "data_root", "threads"):
            # only what is typed on this command line; $DDPM_DEPLOY_DATA must not move a run's data
            if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE:
                setattr(cfg, name, options[name])
    else:
        cfg = TrainConfig(**options)
    out = run(cfg, resume=resume_dir is not None)
    click.echo(
        f"checkpoints in {out}: best.safetensors, last.safetensors; loss curve in {out / 'loss.png'}"
    )


@main.command("train-classifier")
@DATASET
@DATA_ROOT
@click.option("-o", "--out", required=True, help="ONNX file to write, e.g. mnist_classifier.onnx.")
@click.option("--epochs", default=8, type=int)
@click.option("--batch-size", default=128, type=int)
@click.option("--lr", default=1e-3, type=float, help="Peak learning rate (one-cycle schedule).")
@click.option("--seed", default=0, type=int)
@click.option("--limit", default=None, type=int, help="Train on the first N images only.")
@click.option("--device", default="auto", help="auto, cpu or cuda.")
@friendly_errors
def train_classifier(out, **options) -> None:
    """Train the small CNN that `evaluate` measures samples with, and export it to ONNX.

    Reports its accuracy on the test split, which is stored in the ONNX file's metadata.
    """
    from ddpm_deploy.datasets import load_split, to_model_space
    from ddpm_deploy.export.classifier_export import export_classifier
    from ddpm_deploy.train.classifier import ClassifierConfig
    from ddpm_deploy.train.classifier import train_classifier as run

    if not str(out).endswith(".onnx"):
        raise UserError(f"-o {out}: the output file must end in .onnx")
    cfg = ClassifierConfig(**options)
    model, card = run(cfg)
    test = to_model_space(load_split(cfg.dataset, cfg.data_root, train=False).images[:1000])
    parity = export_classifier(model, card, out, test)
    click.echo(
        f"test accuracy {card['test_accuracy']:.2%} on {cfg.dataset}; ONNX Runtime vs PyTorch on "
        f"1000 test images: max |diff| {max(parity['features_max_abs'], parity['logits_max_abs']):.1e}"
    )
    click.echo(f"wrote {out}")


@main.command()
@DATASET
@DATA_ROOT
@click.option("-n", "n", default=8, type=click.IntRange(1, 64), help="How many images.")
@click.option("--seed", default=0, type=int)
@click.option("--out", default="forward.png", help="PNG to write.")
@click.option("--scale", default=1, type=click.IntRange(1, 16), help="Enlarge every pixel N x N.")
@friendly_errors
def forward(dataset, data_root, n, seed, out, scale) -> None:
    """Picture real images noised to 25-100% of T.

    Row 1 holds real images; rows 2-5 the same images at 25, 50, 75 and 100% of T.
    """
    from ddpm_deploy.forward import forward_picture

    click.echo(f"wrote {forward_picture(dataset, data_root, n, seed, out, scale=scale)}")


def engine_options(fn):
    """Options shared by `export --fp16` and `build-engine`."""
    for option in reversed(
        [
            click.option(
                "--min-batch", default=1, type=int, help="Engine profile: smallest batch."
            ),
            click.option(
                "--opt-batch", default=16, type=int, help="Engine profile: batch tuned for."
            ),
            click.option(
                "--max-batch", default=100, type=int, help="Engine profile: largest batch."
            ),
            click.option(
                "--workspace-mb",
                default=None,
                type=int,
                help="Builder workspace limit (small boards).",
            ),
            click.option(
                "--cache",
                default=None,
                help="Engine cache folder. [default: engines/ beside the ONNX file]",
            ),
            click.option(
                "--rebuild", is_flag=True, help="Rebuild even if a matching engine is cached."
            ),
        ]
    ):
        fn = option(fn)
    return fn


def _build_engine(onnx_path, fp16, min_batch, opt_batch, max_batch, workspace_mb, cache, rebuild):
    from ddpm_deploy.export.engine import build
    from ddpm_deploy.runtime.engine_cache import BatchProfile

    profile = BatchProfile(min_batch, opt_batch, max_batch)
    engine = build(
        onnx_path,
        fp16=fp16,
        profile=profile,
        cache_dir=cache,
        workspace_mb=workspace_mb,
        rebuild=rebuild,
    )
    click.echo(f"engine {engine} (sidecar {engine.with_suffix('.json').name})")


@main.command()
@click.argument("checkpoint")
@click.option("-o", "--out", default="model.onnx", help="ONNX file to write.")
@click.option(
    "--verify/--no-verify", default=True, help="Prove parity with PyTorch at batch 1, 16, 100."
)
@click.option("--weights", default="auto", help="auto (the card's choice), ema or model.")
@click.option("--fp16", is_flag=True, help="Also build a TensorRT FP16 engine (needs TensorRT).")
@engine_options
@friendly_errors
def export(checkpoint, out, verify, weights, fp16, **engine) -> None:
    """Export a checkpoint to a self-describing ONNX file.

    CHECKPOINT is a .safetensors file or a training folder (its best.safetensors).
    """
    from ddpm_deploy.export.onnx_export import export_onnx

    if fp16:
        from ddpm_deploy.export.engine import require_tensorrt

        require_tensorrt()  # before any work: nothing is written on a machine without TensorRT
    cases = export_onnx(checkpoint, out, verify=verify, weights=weights)
    for case in cases:
        click.echo(case)
    click.echo(f"wrote {out}" + ("" if verify else " (parity not checked: --no-verify)"))
    if fp16:
        _build_engine(out, True, **engine)


@main.command()
@click.argument("model")
@click.option(
    "--int8", "int8", is_flag=True, required=True, help="Post-training static INT8 (QDQ)."
)
@click.option("-o", "--out", required=True, help="ONNX file to write, e.g. model.int8.onnx.")
@DATA_ROOT
@click.option("--calibration-batches", default=16, type=int, help="Calibration batches.")
@click.option("--calibration-batch", default=32, type=int, help="Images per calibration batch.")
@click.option("--seed", default=0, type=int, help="Seed of the calibration images, t and noise.")
@friendly_errors
def quantize(model, int8, out, data_root, calibration_batches, calibration_batch, seed) -> None:
    """Quantize an exported ONNX model to INT8 (QDQ), checked against fp32 before it is written.

    Calibrates on x_t from the forward process over training images under --data-root; prints the
    per-timestep error of int8 against fp32 and writes nothing if it exceeds the bounds. Passing
    them does not prove quality (docs/BENCHMARKS.md): check the file with `evaluate`.
    """
    from ddpm_deploy.export.quantize import quantize_int8
    from ddpm_deploy.runtime.models import resolve_model

    err = quantize_int8(
        resolve_model(model), out, data_root, calibration_batches, calibration_batch, seed
    )
    click.echo(str(err))
    click.echo(f"wrote {out}")
    click.echo(
        "These bounds are necessary, not sufficient: on the shipped fashion_mnist model an int8 file "
        "within them tripled FD (docs/BENCHMARKS.md). Measure it before use: "
        f"ddpm-deploy evaluate --model {out}",
        err=True,
    )


@main.command("build-engine")
@click.argument("model")
@click.option(
    "--fp16", is_flag=True, help="Build from a mixed-precision copy of MODEL (fp16 weights)."
)
@engine_options
@friendly_errors
def build_engine(model, fp16, **engine) -> None:
    """Build (or reuse) a TensorRT engine for this GPU."""
    _build_engine(model, fp16, **engine)


@main.command()
@click.option("--model", default="fashion_mnist", help="ONNX model (ort), or a shipped model name.")
@click.option("--checkpoint", default=None, help="Training checkpoint for the torch backend.")
@click.option(
    "--backend",
    "backends",
    default="ort",
    help="Comma-separated: ort, torch, trt, openvino, with a precision after a colon: "
    "openvino:bf16, ort:int8, openvino:int8 (int8 runs --int8-model).",
)
@click.option(
    "--int8-model", default=None, help="QDQ int8 ONNX file (`ddpm-deploy quantize`) for NAME:int8."
)
@click.option("--batch", "batches", default="1,16,100", help="Comma-separated batch sizes.")
@click.option("--steps", default=50, type=int, help="Timed sampling steps per round.")
@click.option("--rounds", default=3, type=int, help="Rounds; backends alternate within each.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@friendly_errors
def bench(model, checkpoint, backends, int8_model, batches, steps, rounds, as_json) -> None:
    """Time the sampling loop per backend and batch size."""
    from ddpm_deploy.runtime.bench import bench as run
    from ddpm_deploy.runtime.bench import load_for_bench, rows_as_dicts, table
    from ddpm_deploy.runtime.models import resolve_model

    try:
        sizes = [int(b) for b in batches.split(",")]
    except ValueError:
        raise UserError(f"--batch takes comma-separated integers, got {batches!r}") from None
    names = [b.strip() for b in backends.split(",") if b.strip()]
    onnx_path = resolve_model(model)
    denoisers = load_for_bench(names, str(onnx_path), checkpoint, int8_model)
    flops = None
    try:
        from ddpm_deploy.export.flops import count_flops

        flops = count_flops(onnx_path)["total"]
    except ModuleNotFoundError:
        click.echo(
            "(onnx not installed: FLOP/s columns need `pip install 'ddpm-deploy[export]'`)",
            err=True,
        )
    rows, info = run(denoisers, sizes, steps=steps, rounds=rounds, flops_per_image=flops)
    if as_json:
        click.echo(json.dumps({"rows": rows_as_dicts(rows), **info}, indent=2))
    else:
        click.echo(table(rows, info))


@main.command("bench-train")
@DATASET
@DATA_ROOT
@click.option("--batch-size", default=128, type=click.IntRange(1))
@click.option("--steps", default=30, type=click.IntRange(1), help="Timed training steps per round.")
@click.option(
    "--rounds", default=2, type=click.IntRange(1), help="Rounds; the two loops alternate."
)
@friendly_errors
def bench_train(dataset, data_root, batch_size, steps, rounds) -> None:
    """Training images/s: this project's loop vs the seed's DataLoader loop."""
    from ddpm_deploy.train.throughput import compare

    result = compare(dataset, data_root, batch_size, steps, rounds)
    click.echo(json.dumps(result, indent=2))


def sampler_options(fn):
    """The sampler options of `sample` and `evaluate`, with the defaults of runtime/samplers.py."""
    from ddpm_deploy.runtime.samplers import SamplerSettings

    d = SamplerSettings()
    options = [
        click.option(
            "--sampler",
            default=d.sampler,
            help="ddpm (ancestral; respaced when --steps < T), ddim, or dpm++2m (DPM-Solver++ 2M).",
        ),
        click.option(
            "--steps",
            default=d.steps,
            type=int,
            help="Network calls per image (1..T)." + ("" if d.steps else " [default: T]"),
        ),
        click.option("--spacing", default=d.spacing, help="Timesteps: linspace, leading or trailing."),
        click.option("--eta", default=d.eta, type=float, help="DDIM noise: 0 deterministic, 1 DDPM-like."),
        click.option("--variance", default=d.variance, help="DDPM sigma^2: beta (the article's) or posterior."),
        click.option("--clip/--no-clip", default=d.clip, help="Clip the predicted x0 to [-1, 1] in each step."),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def doctor(as_json) -> None:
    """Show what this machine can run."""
    from ddpm_deploy.doctor import collect, report

    info = collect()
    click.echo(json.dumps(info, indent=2) if as_json else report(info))


@main.command()
@click.option(
    "--model",
    default="fashion_mnist",
    help="A shipped model name (fashion_mnist, mnist), an .onnx file (ort) or a checkpoint (torch).",
)
@click.option(
    "--backend", default="ort", help="ort, openvino, torch or trt: what runs the denoiser."
)
@click.option("--device", default="cpu", help="torch backend only: cpu or cuda.")
@click.option(
    "--precision", default="fp32", help="openvino backend only: fp32, or bf16 on CPUs with BF16."
)
@sampler_options
@click.option("-n", "n", default=10_000, type=int, help="How many images to generate.")
@click.option(
    "--class-conditional",
    is_flag=True,
    help="Image i asks for class i mod K; also report the share classified as the asked class.",
)
@click.option(
    "--random-class",
    is_flag=True,
    help="Image i asks for a uniformly random class (drawn from seed and i), as `sample` does by "
    "default. [default for class-conditional models]",
)
@click.option(
    "--null-label",
    is_flag=True,
    help="A class-conditional model's null label (its unconditional branch), as `sample --class none`.",
)
@click.option(
    "--guidance",
    default=DEFAULT_GUIDANCE,
    type=float,
    help="Classifier-free guidance weight with --class-conditional.",
)
@click.option("--batch", default=1000, type=int, help="Images generated per chunk.")
@click.option("--seed", default=0, type=int)
@click.option(
    "--dataset", default=None, help="Check the model against this dataset. [default: the model's]"
)
@click.option("--classifier", default=None, help="Classifier ONNX file. [default: the shipped one]")
@DATA_ROOT
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@friendly_errors
def evaluate(as_json, **options) -> None:
    """Measure sample quality: FD in a classifier's feature space, class balance, confidence.

    Needs the dataset's test split (and 10,000 training images for the real-data floor) under
    --data-root.
    """
    from ddpm_deploy.runtime.evaluate import EvalRequest, summary
    from ddpm_deploy.runtime.evaluate import evaluate as run

    result = run(EvalRequest(**options))
    click.echo(json.dumps(result, indent=2) if as_json else summary(result))


@main.command()
@click.option(
    "--model",
    default="fashion_mnist",
    help="A model shipped in the package (fashion_mnist, mnist, or the seed article's UNet: "
    "fashion_mnist_reference, mnist_reference), an .onnx file (ort), an .engine file (trt) or a "
    "training checkpoint (torch). Shipped names win over a folder of the same name; write ./NAME "
    "for a local file.",
)
@click.option(
    "--backend",
    default="ort",
    help="ort (ONNX Runtime), openvino (OpenVINO, CPU), trt (TensorRT engine), torch (PyTorch "
    "reference) or triton (a Triton server's ddpm_denoiser, at --url).",
)
@click.option(
    "--url",
    default=None,
    help="triton backend: HOST:PORT[/MODEL] of the server's HTTP endpoint (`ddpm-deploy serve`).",
)
@sampler_options
@click.option("-n", "n", default=16, type=int, help="How many images (per class with --class all).")
@click.option(
    "--class",
    "class_",
    default=None,
    help="Class-conditional models: a class name (e.g. sneaker) or index, 'all' for one row per "
    "class, 'random' for a uniformly random class per image, or 'none' for the null label. "
    "[default: random for class-conditional models, else unconditional]",
)
@click.option(
    "--guidance",
    default=DEFAULT_GUIDANCE,
    type=float,
    help="Classifier-free guidance weight w with --class: 0 unconditional, 1 conditional.",
)
@click.option("--seed", default=0, type=int)
@click.option("--out", default=".", help="Folder for samples.png, sampling.gif and run.json.")
@click.option("--provider", default="cpu", help="ONNX Runtime provider: cpu, cuda or tensorrt.")
@click.option(
    "--allow-cpu-fallback", is_flag=True, help="Run on the CPU if the GPU provider fails."
)
@click.option(
    "--precision", default="fp32", help="openvino backend: fp32, or bf16 on CPUs with BF16."
)
@click.option("--frames", default=100, type=int, help="GIF frames spread over the steps.")
@click.option("--scale", default=1, type=int, help="Enlarge every pixel of the outputs N x N.")
@click.option(
    "--batch",
    default=100,
    type=int,
    help="Images per chunk (one denoiser call per step; twice the rows with guidance).",
)
@click.option(
    "--save",
    default=None,
    type=click.Choice(["npz"]),
    help="Also write every sample to samples.npz (uint8 images, labels). [default: pictures only]",
)
@click.option("--save-float", is_flag=True, help="With --save npz: also the raw float32 samples.")
@friendly_errors
def sample(**options) -> None:
    """Generate images: samples.png, sampling.gif and run.json (and samples.npz with --save).

    The pictures show the first 64 images (10 per class with --class all); image i depends only
    on (--seed, i), whatever -n or --batch.
    """
    from ddpm_deploy.runtime.pipeline import SampleRequest, run_sampling

    record = run_sampling(SampleRequest(**options))
    click.echo(
        f"{record['n']} samples ({record['sampler']}, {record['steps']} steps, {record['backend']} on "
        f"{record['device']}, {record['seconds']:.1f} s) in {record['out']}: "
        + ", ".join(record["outputs"] + ["run.json"])
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


@main.command()
@click.option(
    "--model",
    default="fashion_mnist",
    help="A shipped model name or an .onnx file (ort, openvino), an engine (trt).",
)
@click.option(
    "--backend",
    default="ort",
    help="What runs the denoiser inside the server: ort, openvino or trt.",
)
@click.option("--precision", default="fp32", help="openvino backend: fp32 or bf16.")
@click.option(
    "--host", default="127.0.0.1", help="Address to bind; 0.0.0.0 serves other machines too."
)
@click.option("--http-port", default=8000, type=int)
@click.option("--grpc-port", default=8001, type=int)
@click.option("--metrics-port", default=8002, type=int, help="Prometheus metrics at /metrics.")
@click.option(
    "--max-images",
    default=64,
    type=int,
    help="Most images per request, and per batch Triton executes.",
)
@click.option(
    "--queue-delay-us",
    default=5000,
    type=int,
    help="How long Triton's dynamic batcher waits to fill a batch.",
)
@click.option(
    "--batch",
    default=16,
    type=int,
    help="Images per sampler run in the server: ddpm_sample runs a dynamic batch in chunks of "
    "this size (16 measured fastest on a 2-core CPU; GPUs want more).",
)
@click.option(
    "--exit-timeout",
    "exit_timeout_s",
    default=30,
    type=int,
    help="Seconds in-flight requests get to finish on Ctrl-C or SIGTERM.",
)
@click.option(
    "--log", default=None, help="Write Triton's log to this file. [default: a temporary file]"
)
@friendly_errors
def serve(**options) -> None:
    """Serve the model on Triton Inference Server: ddpm_sample (images) and ddpm_denoiser (eps).

    Needs the serve extra (nvidia-pytriton bundles the tritonserver binary). docs/SERVING.md
    describes the requests; `sample --backend triton --url HOST:PORT` is a client.
    """
    from ddpm_deploy.serve.server import ServeOptions
    from ddpm_deploy.serve.server import serve as run

    sys.exit(run(ServeOptions(**options), on_ready=lambda line: click.echo(line, err=True)))


@main.command("triton-repo")
@click.argument("model")
@click.option("-o", "--out", required=True, help="New folder for the model repository.")
@click.option(
    "--engine", default=None, help="Also a tensorrt_plan model from this TensorRT engine."
)
@click.option("--max-batch", default=64, type=int, help="Triton's max_batch_size.")
@click.option("--queue-delay-us", default=5000, type=int, help="Dynamic batcher's max queue delay.")
@click.option("--instances", default=1, type=int, help="Model instances (instance_group count).")
@click.option("--kind", type=click.Choice(["gpu", "cpu"]), default="gpu", help="Instance kind.")
@click.option(
    "--trt-accelerator/--no-trt-accelerator",
    default=False,
    help="ONNX Runtime's TensorRT execution accelerator (fp16).",
)
@friendly_errors
def triton_repo(
    model, out, engine, max_batch, queue_delay_us, instances, kind, trt_accelerator
) -> None:
    """Write a Triton model repository for the full Triton container (unverified here)."""
    from ddpm_deploy.serve.repository import triton_repo as run

    for path in run(
        model, out, engine, max_batch, queue_delay_us, instances, kind, trt_accelerator
    ):
        click.echo(path)
