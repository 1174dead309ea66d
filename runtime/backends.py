"""One denoiser interface for every backend (docs/ARCHITECTURE.md, invariant 3).

``eps = denoiser(x, t)`` with x float32[N,C,H,W] (the card's image shape, ``image_shape``) and
t int64[N], returning float32[N,C,H,W];
a class-conditional model (its card's ``arch.num_classes`` K > 0) also takes ``y: int64[N]``, where
K is the null label (unconditional). Guidance is built on top (``runtime/guidance.py``).
Each backend module is imported only when chosen, so the ONNX Runtime path never imports torch.
"""

from __future__ import annotations

import functools
import importlib
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ddpm_deploy.runtime.gaussian import GaussianStats

from ddpm_deploy.bounds import OPTION_BOUNDS
from ddpm_deploy.card import card_schedule, image_shape, num_classes
from ddpm_deploy.errors import UserError, is_integer
from ddpm_deploy.files import regular_input
from ddpm_deploy.onnx_model import GRAPH_KEY
from ddpm_deploy.schedule import Schedule
from ddpm_deploy.shipped import resolve_model

# name -> (module, class): imported lazily, as Polygraphy's runners are.
BACKENDS = {
    "ort": ("ddpm_deploy.runtime.ort_backend", "OrtDenoiser"),
    "torch": (
        "ddpm_deploy.train.torch_backend",
        "TorchDenoiser",
    ),  # the train stage: it runs a checkpoint
    "trt": ("ddpm_deploy.runtime.trt_backend", "TrtDenoiser"),
    "openvino": ("ddpm_deploy.runtime.openvino_backend", "OpenVinoDenoiser"),
    "triton": ("ddpm_deploy.runtime.triton_backend", "TritonDenoiser"),  # path: HOST:PORT[/MODEL]
}
ONNX_BACKENDS = ("ort", "openvino")  # backends that read .onnx files (and so shipped model names)


class Denoiser:
    """Base class: a callable noise predictor that knows its model card."""

    backend: str = ""
    card: dict
    path: Path
    device: str = "cpu"  # what actually runs it, e.g. 'CPUExecutionProvider' or 'cuda:0'

    def __call__(self, x: np.ndarray, t: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        """0: unconditional; K: a class-conditional model (labels 0..K-1, null label K)."""
        return num_classes(self.card)

    def inputs(self, x: np.ndarray, t: np.ndarray, y: np.ndarray | None) -> dict[str, np.ndarray]:
        """The model's named inputs; a conditional model called without y gets the null label."""
        feeds = {"x": x, "t": t}
        if self.num_classes:
            if y is None and self.card["arch"].get("null_label") is False:  # import-diffusers
                raise UserError(f"{self.path} has no null label: every image needs a class")
            feeds["y"] = np.full(len(x), self.num_classes, np.int64) if y is None else y
        elif y is not None:
            raise UserError(f"{self.path} is an unconditional model; it takes no class labels")
        return feeds

    @property
    def schedule(self) -> Schedule:
        return card_schedule(self.card)

    @functools.cached_property
    def gaussian(self) -> GaussianStats | None:
        """The card's Gaussian statistics for analytic steps (runtime/gaussian.py), decoded once."""
        entry = self.card.get("gaussian")
        dim = int(np.prod(self.image_shape))
        return GaussianStats.from_card(entry, self.num_classes, dim) if entry else None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) from the card."""
        return image_shape(self.card)

    @property
    def whole_sampler(self) -> bool:
        """The file holds the whole sampler (`export-sampler`): run it with ``sample_whole``."""
        return GRAPH_KEY in self.card

    def sample_whole(
        self, seed: int, start: int, count: int, labels: np.ndarray | None
    ) -> np.ndarray:
        """x0 of images start .. start+count-1 of ``seed`` from a sampler graph (runtime/graph_feeds.py)."""
        from ddpm_deploy.runtime.graph_feeds import graph_feeds

        return self.run_graph(graph_feeds(self, seed, start, count, labels))

    def run_graph(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        raise UserError(f"--backend {self.backend} cannot run a sampler graph; use ort or openvino")


def load_denoiser(backend: str, path: str | os.PathLike, **options) -> Denoiser:
    """Build the named backend's denoiser for the model file at ``path``."""
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; choose from {sorted(BACKENDS)}")
    module, cls = BACKENDS[backend]
    if backend == "triton":
        return getattr(importlib.import_module(module), cls)(str(path), **options)
    path = Path(path)
    if not path.exists():
        raise UserError(f"no model file at {path}; pass an existing --model")
    regular_input(path)  # a FIFO would block the backend's read for ever
    return getattr(importlib.import_module(module), cls)(path, **options)


# what each backend takes of the model-and-backend options (ModelChoice)
TAKES = {
    "ort": ("provider", "allow_cpu_fallback", "threads"),
    "openvino": ("threads",),
    "torch": ("device", "threads"),
    "trt": (),
    "triton": (),
}


def backend_options(backend: str, precision: str = "fp32", **given) -> dict:
    """The options ``backend`` takes, of those a command has: ``precision`` (fp32, bf16) for
    openvino only (the others run at the precision of their model file), ``provider`` and
    ``allow_cpu_fallback`` for ort, ``device`` for torch, ``threads`` for the CPU backends.
    Options left at their defaults (None, False, "cpu") are not passed."""
    if precision != "fp32" and backend != "openvino":
        raise UserError(
            f"--precision {precision} applies to --backend openvino; other backends take the "
            "precision of the model file (an fp16 or int8 ONNX file or engine)"
        )
    options = {k: v for k, v in given.items() if k in TAKES.get(backend, ()) and v is not None}
    return {"precision": precision, **options} if backend == "openvino" else options


@dataclass
class ModelChoice:
    """The model-and-backend options every command that opens a model shares (`sample`,
    `evaluate`, `bench`, `serve`): one group in the CLI (cli/options.py model_options)."""

    model: str = "fashion_mnist"
    backend: str = "ort"
    provider: str = "cpu"  # ort: cpu, cuda or tensorrt
    allow_cpu_fallback: bool = False  # ort: run on the CPU if the GPU provider fails to load
    device: str = "cpu"  # torch: cpu or cuda
    precision: str = "fp32"  # openvino: fp32 or bf16
    threads: int | None = None  # CPU threads (ort, openvino, torch); None: the library's choice
    url: str | None = None  # triton: HOST:PORT[/MODEL] of a Triton server (`ddpm-deploy serve`)

    def check_choice(self) -> None:
        """Every option that does not fit the backend, in one line, before anything loads."""
        if self.backend not in BACKENDS:
            raise UserError(f"unknown backend {self.backend!r}; choose from {sorted(BACKENDS)}")
        if (self.backend == "triton") != (self.url is not None):
            raise UserError(
                "--backend triton and --url HOST:PORT go together (a `ddpm-deploy serve`)"
            )
        if self.url is not None:
            split_url(self.url)  # a malformed --url refused before anything loads
        for option, default in (
            ("provider", "cpu"),
            ("allow_cpu_fallback", False),
            ("device", "cpu"),
            ("threads", None),
        ):
            value = getattr(self, option)
            if value != default and option not in TAKES[self.backend]:
                flag = "--" + option.replace("_", "-") + ("" if value is True else f" {value}")
                users = [b for b, takes in TAKES.items() if option in takes]
                raise UserError(
                    f"{flag} applies to --backend {' or '.join(users)} only, not {self.backend}"
                )
        top = int(OPTION_BOUNDS["threads"])
        if self.threads is not None and not (is_integer(self.threads) and 1 <= self.threads <= top):
            raise UserError(
                f"--threads must be an integer between 1 and {top}, got {self.threads!r}"
            )

    def backend_kwargs(self) -> dict:
        """The options the chosen backend takes (``backend_options``), as its loader gets them."""
        given = {
            "provider": self.provider,
            "allow_cpu_fallback": self.allow_cpu_fallback or None,
            "device": self.device,
            "threads": self.threads,
        }
        return backend_options(self.backend, self.precision, **given)

    def open(self) -> Denoiser:
        self.check_choice()
        return load_denoiser(
            self.backend, model_path(self.backend, self.url or self.model), **self.backend_kwargs()
        )


# HOST (a name, an IPv4 address or an [IPv6] address), :PORT, /MODEL; what tritonclient takes
_URL = re.compile(
    r"(?P<host>\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?)"
    r"(?::(?P<port>[0-9]+))?(?:/(?P<model>[A-Za-z0-9_.-]*))?"
)


def split_url(url: str) -> tuple[str, str | None]:
    """``--url HOST:PORT[/MODEL]`` as (HOST:PORT, MODEL or None), or one line saying what is
    wrong: read loosely, 'http://[::1' would name the host 'http:'."""
    form = "HOST:PORT[/MODEL], e.g. 127.0.0.1:8000 or [::1]:8000/ddpm_denoiser"
    match = _URL.fullmatch(url)
    if "://" in url:
        raise UserError(f"--url {url!r}: write it without the scheme (http://), as {form}")
    if match and match["ipv6"]:
        try:
            ipaddress.IPv6Address(match["ipv6"])
        except ValueError:
            match = None
    if not match or ".." in match["host"]:
        raise UserError(f"--url {url!r} is not {form}")
    port = match["port"]
    if port is not None and not 1 <= int(port) <= 65535:
        raise UserError(f"--url {url!r}: the port must be 1..65535 ({form})")
    address = match["host"] + (f":{port}" if port is not None else "")
    return address, match["model"] or None


def model_path(backend: str, model: str | os.PathLike) -> Path | str:
    """What ``model`` names for ``backend``: for the ONNX backends a shipped model name or an .onnx
    path (ddpm_deploy/shipped.py decides which), else as given (a checkpoint, an engine, a URL)."""
    if backend in ONNX_BACKENDS:
        return resolve_model(str(model))
    return model


def open_denoiser(
    backend: str, model: str | os.PathLike, precision: str = "fp32", **given
) -> Denoiser:
    """The one way `sample`, `evaluate`, `bench` and `serve` open a model: ``model`` resolved for
    ``backend`` (``model_path``) and opened with the options it takes (``backend_options``)."""
    options = backend_options(backend, precision, **given)
    return load_denoiser(backend, model_path(backend, model), **options)
