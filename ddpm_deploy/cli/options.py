"""What every command shares: the option groups used by several (the one-line error wrapper:
cli/friendly.py)."""

from __future__ import annotations

import functools

import click

from ddpm_deploy.cli.friendly import friendly_errors as friendly_errors  # re-exported


def typed_options(options: dict) -> set[str]:
    """The names among ``options`` that were typed on this command line (not defaults or env vars)."""
    ctx = click.get_current_context()
    typed = click.core.ParameterSource.COMMANDLINE
    return {name for name in options if ctx.get_parameter_source(name) == typed}


def apply_group(fn, options: list):
    """Decorate ``fn`` with a group of click options, in the order listed (what --help shows)."""
    for option in reversed(options):
        fn = option(fn)
    return fn


DATASET = click.option(
    "--dataset",
    default="fashion_mnist",
    help="fashion_mnist (alias fashion), mnist, or folder (--data-root: images, a sub-folder per class).",
)
DATA_ROOT = click.option(
    "--data-root",
    envvar="DDPM_DEPLOY_DATA",
    show_envvar=True,
    default=None,
    help="Folder with the IDX files (torchvision layout or plain), or the images of --dataset "
    "folder. [default: ./data]",
)


def folder_options(fn):
    """How `train --dataset folder` reads its images (ddpm_deploy/image_folder.py)."""
    from ddpm_deploy.image_folder import RESAMPLE

    return apply_group(
        fn,
        [
            click.option(
                "--image-size",
                default=None,
                type=int,
                help="--dataset folder: resize to S x S. [default: the images' own size]",
            ),
            click.option(
                "--channels",
                default=None,
                type=click.IntRange(1, 3),
                help="--dataset folder: 1 grey, 3 colour. [default: 3]",
            ),
            click.option(
                "--background",
                default="white",
                help="--dataset folder: colour under transparent pixels (white, black, grey, #rrggbb, r,g,b).",
            ),
            click.option(
                "--resample",
                default="lanczos",
                type=click.Choice(RESAMPLE),
                help="--dataset folder: Pillow's resizing filter.",
            ),
        ],
    )


MAX_SEED = 2**63 - 1  # numpy's Philox key takes any non-negative int; 63 bits fit every int64 field
SEED = click.option(
    "--seed", default=0, type=click.IntRange(0, MAX_SEED), help="Random seed (0 .. 2**63-1)."
)


class FiniteFloat(click.ParamType):
    """A float option that refuses NaN, infinities and values outside [lo, hi], naming the option."""

    name = "number"

    def __init__(self, lo: float | None = None, hi: float | None = None):
        self.lo, self.hi = lo, hi

    def convert(self, value, param, ctx):
        try:
            v = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if v != v or v in (float("inf"), float("-inf")):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if (self.lo is not None and v < self.lo) or (self.hi is not None and v > self.hi):
            self.fail(f"{v:g} is not in the range {self.describe()}", param, ctx)
        return v

    def describe(self) -> str:
        if self.lo is not None and self.hi is not None:
            return f"{self.lo:g}<=x<={self.hi:g}"
        return f"x>={self.lo:g}" if self.lo is not None else f"x<={self.hi:g}"

    def get_metavar(self, param, ctx=None) -> str:
        bounded = self.lo is not None or self.hi is not None
        return f"NUMBER [{self.describe()}]" if bounded else "NUMBER"


def finite_float(lo: float | None = None, hi: float | None = None) -> FiniteFloat:
    return FiniteFloat(lo, hi)


def numeric(option: click.Parameter) -> bool:
    kind = option.type
    return (
        isinstance(option, click.Option)
        and not option.is_flag
        and (isinstance(kind, (FiniteFloat, click.IntRange)) or kind is click.INT)
    )


def apply_bounds(group: click.Group) -> None:
    """Give every numeric option of every command its upper bound from the one table
    (ddpm_deploy/bounds.py OPTION_BOUNDS), checked when the command line is parsed; a bound the
    option already has stays where it is tighter. An option the table lacks stops the CLI loading."""
    from ddpm_deploy.bounds import option_bound

    missing = []
    for command_name, command in group.commands.items():
        for option in filter(numeric, command.params):
            try:
                hi = option_bound(command_name, option.name)
            except KeyError:
                missing.append(f"{command_name} --{option.name}")
                continue
            kind = option.type
            if isinstance(kind, FiniteFloat):
                option.type = FiniteFloat(kind.lo, hi if kind.hi is None else min(kind.hi, hi))
            else:
                lo = kind.min if isinstance(kind, click.IntRange) else None
                top = kind.max if isinstance(kind, click.IntRange) else None
                option.type = click.IntRange(lo, int(hi if top is None else min(top, hi)))
    if missing:
        raise RuntimeError(f"no upper bound in ddpm_deploy/bounds.py OPTION_BOUNDS for {missing}")


JSON = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def engine_options(fn):
    """Options shared by `export --fp16` and `build-engine`."""
    return apply_group(
        fn,
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
        ],
    )


MODEL_OPTIONS = (
    "model",
    "backend",
    "provider",
    "allow_cpu_fallback",
    "device",
    "precision",
    "threads",
    "url",
)


def model_options(fn=None, *, leave_out: tuple[str, ...] = ()):
    """The model-and-backend group of every command that opens a model (runtime/backends.py
    ModelChoice): `sample`, `evaluate`, `serve`; `bench` leaves out what its own --backend list
    says (`model_options(leave_out=("backend", "precision"))`)."""
    if fn is None:
        return functools.partial(model_options, leave_out=leave_out)
    from ddpm_deploy.runtime.backends import ModelChoice

    d = ModelChoice()
    options = dict(
        zip(
            MODEL_OPTIONS,
            [
                click.option(
                    "--model",
                    default=d.model,
                    help="A shipped model name (fashion_mnist, mnist, emoji, or the seed article's UNet: fashion_mnist_reference, mnist_reference), an .onnx file (ort, openvino), an .engine file (trt) or a training checkpoint (torch). Shipped names win over a folder of the same name; write ./NAME for a local file.",
                ),
                click.option(
                    "--backend",
                    default=d.backend,
                    help="ort (ONNX Runtime), openvino (OpenVINO, CPU), trt (TensorRT engine), torch (PyTorch reference) or triton (a Triton server's ddpm_denoiser, at --url).",
                ),
                click.option(
                    "--provider",
                    default=d.provider,
                    help="ort: ONNX Runtime provider, cpu, cuda or tensorrt.",
                ),
                click.option(
                    "--allow-cpu-fallback",
                    is_flag=True,
                    help="ort: run on the CPU if the GPU provider fails to load.",
                ),
                click.option("--device", default=d.device, help="torch: cpu or cuda."),
                click.option(
                    "--precision",
                    default=d.precision,
                    help="openvino: fp32, or bf16 on CPUs with BF16.",
                ),
                click.option(
                    "--threads",
                    default=d.threads,
                    type=click.IntRange(1, 1024),
                    help="ort, openvino, torch: CPU threads. [default: the library's]",
                ),
                click.option(
                    "--url",
                    default=d.url,
                    help="triton: HOST:PORT[/MODEL] of the server's HTTP endpoint (`ddpm-deploy serve`).",
                ),
            ],
            strict=True,
        )
    )
    return apply_group(fn, [option for name, option in options.items() if name not in leave_out])
