"""`ddpm-deploy quantize`: post-training static INT8 into a QDQ ONNX model, gated end to end.

ONNX Runtime's ``quantize_static`` writes QuantizeLinear/DequantizeLinear pairs (per-channel int8
weights, per-tensor int8 activations): the form ONNX Runtime's CPU kernels, OpenVINO and
TensorRT's explicit (strongly typed) INT8 all take, with no TensorRT calibrator. It is chosen over
NVIDIA's Model Optimizer because it installs with onnxruntime (already a dependency) and runs on
any CPU, where the file is checked before it is written.

What is quantized, how it is calibrated and what stays in float is a named setting
(export/quantize_settings.py). The file is written only if the end-to-end gate passes
(export/quantize_gate.py: the quantized and the fp32 model sample the same noise and classes, and
`evaluate`'s judges compare the two sets), or with ``force``. The per-timestep eps error against
fp32 is reported beside it as a diagnostic: it does not decide (docs/QUALITY.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ddpm_deploy.export.quantize_gate import GATE_N, GateReport, check_n, gate
from ddpm_deploy.export.quantize_settings import (
    DEFAULT_SETTING,
    QuantSettings,
    settings_for,
    static_kwargs,
)

from ddpm_deploy.bounds import MAX_CALIBRATION_ROWS
from ddpm_deploy.card import CARD_KEY, card_schedule, dumps, num_classes
from ddpm_deploy.datasets import to_model_space
from ddpm_deploy.errors import UserError
from ddpm_deploy.files import atomic_path, check_writable, onnx_output
from ddpm_deploy.forward import q_sample
from ddpm_deploy.onnx_model import copy_model, read_card, refuse_sampler_file

# The per-timestep diagnostic: |eps_int8 - eps_fp32| on test images through the forward process,
# weighted by sqrt(1 - alpha_bar_t) (the error in the noise component of x_t that a reverse step
# removes). It does not decide: a file within median 0.02, p99 0.1 of it tripled FD at guidance 2.
CHECK_TIMESTEPS = (0, 10, 100, 250, 500, 750, 900, 999)


def forward_batches(
    card: dict, data_root, batches: int, batch: int, seed: int, train: bool = True
) -> list[dict[str, np.ndarray]]:
    """x_t = sqrt(ab) x0 + sqrt(1 - ab) eps on dataset images, t uniform over [0, T)."""
    images, labels = dataset_images(card, data_root, train)
    schedule, k = card_schedule(card), num_classes(card)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(batches):
        idx = rng.integers(0, len(images), batch)
        x0 = to_model_space(images[idx])
        t = rng.integers(0, schedule.T, batch, dtype=np.int64)
        out.append(_noised(x0, t, schedule, rng, labels[idx], k))
    return out


def dataset_images(card: dict, data_root, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [N, C, H, W] and labels: an IDX split, or a folder model's images the way `evaluate`
    reads them (the folder the card records, hash-checked; its second half as the test set)."""
    from ddpm_deploy.runtime.real_images import real_images, training_set

    if train:
        return training_set(card, data_root)
    real = real_images(card, data_root, limit=0)
    return real.test, real.test_labels


def _noised(x0, t, schedule, rng, labels, k) -> dict[str, np.ndarray]:
    feed = {"x": q_sample(x0, t, rng.standard_normal(x0.shape), schedule), "t": t}
    if k:
        y = labels.astype(np.int64)
        feed["y"] = np.where(rng.random(len(y)) < 0.1, k, y)
    return feed


def sampler_batches(src: Path, batches: int, batch: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Timestep-aware calibration (Q-Diffusion, PTQ4DM): the inputs the fp32 model meets in its
    default sampler, the same number of rows at each of the sampler's timesteps, in feeds of
    ``batch`` rows (each feed one timestep). Images and classes drawn from (seed + 1000, i), so
    the gate's images (seed) are not the calibration's."""
    from ddpm_deploy.runtime.backends import load_denoiser
    from ddpm_deploy.runtime.evaluate import EvalRequest, generate

    fp32 = load_denoiser("ort", src)
    steps = EvalRequest().for_model(fp32.card).steps
    n = max(batch, -(-batches * batch // steps))  # images: about batches * batch rows in all
    calls: list[dict[str, np.ndarray]] = []

    class Recorder:
        def __getattr__(self, name):
            return getattr(fp32, name)

        def __call__(self, x, t, y=None):
            calls.append(fp32.inputs(x.copy(), t.copy(), None if y is None else y.copy()))
            return fp32(x, t, y)

    generate(Recorder(), EvalRequest(n=n, seed=seed + 1000, batch=n, progress=False))
    return [
        {k: v[i : i + batch] for k, v in feed.items()}
        for feed in calls
        for i in range(0, len(feed["x"]), batch)
    ]


class _Reader:
    """onnxruntime.quantization's CalibrationDataReader protocol over prepared batches."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self.feeds = iter(feeds)

    def get_next(self):
        return next(self.feeds, None)

    def rewind(self):  # pragma: no cover - only used by some calibrators
        pass


@dataclass
class Int8Error:
    median: float  # of the weighted error, all checked timesteps together
    p99: float
    max: float
    per_t: dict[int, tuple[float, float, float]]  # raw |eps difference| per t: median, p99, max

    def __str__(self) -> str:
        lines = [
            "per-timestep diagnostic (does not decide), sqrt(1 - alpha_bar_t) |eps int8 - fp32|: "
            f"median {self.median:.2e}, p99 {self.p99:.2e}, max {self.max:.2e}; "
            "raw |eps difference| per t:"
        ]
        for t, (med, p99, mx) in self.per_t.items():
            lines.append(f"  t={t:<4} median {med:.2e}  p99 {p99:.2e}  max {mx:.2e}")
        return "\n".join(lines)


def int8_error(fp32: Path, int8: Path, card: dict, data_root, batch: int = 32) -> Int8Error:
    """Per timestep, on test images the calibration never saw."""
    import onnxruntime as ort

    sessions = [
        ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (fp32, int8)
    ]
    images, labels = dataset_images(card, data_root, train=False)
    schedule, k = card_schedule(card), num_classes(card)
    rng = np.random.default_rng(1)
    idx = rng.integers(0, len(images), batch)
    x0 = to_model_space(images[idx])
    per_t, diffs = {}, []
    for t in CHECK_TIMESTEPS:
        feed = _noised(x0, np.full(batch, t, np.int64), schedule, rng, labels[idx], k)
        a, b = (s.run(["eps"], feed)[0].astype(np.float64) for s in sessions)
        d = np.abs(a - b).ravel()
        per_t[t] = (float(np.median(d)), float(np.percentile(d, 99)), float(d.max()))
        diffs.append(d * np.sqrt(1.0 - schedule.alpha_bars[t]))
    d = np.concatenate(diffs)
    return Int8Error(float(np.median(d)), float(np.percentile(d, 99)), float(d.max()), per_t)


@dataclass
class QuantizeResult:
    setting: str
    error: Int8Error
    gate: GateReport
    written: bool  # False: the gate failed and nothing was written

    def to_dict(self) -> dict:
        e = self.error
        return {"setting": self.setting, "settings": settings_for(self.setting).describe(),
                "written": self.written, "gate": self.gate.to_dict(),
                "eps_error": {"median": e.median, "p99": e.p99, "max": e.max,
                              "per_t": {str(t): v for t, v in e.per_t.items()}}}  # fmt: skip


class _Refused(Exception):
    """The gate failed without --force: leave atomic_path without renaming."""


def quantize_int8(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    data_root=None,
    batches: int = 16,
    batch: int = 32,
    seed: int = 0,
    setting: str = DEFAULT_SETTING,
    gate_n: int = GATE_N,
    force: bool = False,
) -> QuantizeResult:
    """Quantize ``src`` with the named setting; write ``dst`` only if the gate passes (or force)."""
    src, dst = Path(src), Path(dst)
    settings, card = _check(src, dst, batches, batch, setting, gate_n)
    if settings.calibration == "sampler":
        feeds = sampler_batches(src, batches, batch, seed)
    else:
        feeds = forward_batches(card, data_root, batches, batch, seed)
    result = None
    try:
        with atomic_path(dst) as tmp:
            quantize_file(src, tmp, settings, feeds)
            err = int8_error(src, tmp, card, data_root)
            report = gate(src, tmp, card["dataset"], gate_n, seed)
            result = QuantizeResult(setting, err, report, written=True)
            if not report.passed and not force:
                raise _Refused
            _stamp(tmp, card, settings, setting, batches, batch, seed, report)
    except _Refused:
        result.written = False
    return result


def _check(src: Path, dst: Path, batches: int, batch: int, setting: str, gate_n: int):
    """Every bad input in one line, before anything runs."""
    import onnx

    onnx_output(dst, src)
    check_writable(dst.parent, "-o")  # made by atomic_path
    settings = settings_for(setting)
    check_n(gate_n)
    card = read_card(src)  # one line for a file without a card
    refuse_sampler_file(card, src, "quantize")
    model = onnx.load(str(src))
    if card.get("precision", "fp32") != "fp32" or any(
        n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node
    ):
        raise UserError(
            f"{src} is already a reduced-precision model ({card.get('precision', 'QDQ nodes')}); "
            "quantize the fp32 export"
        )
    if batches < 1 or batch < 1:
        raise UserError("--calibration-batches and --calibration-batch must be positive")
    if batches * batch > MAX_CALIBRATION_ROWS:  # every row is kept for the calibrator
        raise UserError(
            f"--calibration-batches {batches} x --calibration-batch {batch} = {batches * batch:,} "
            f"rows; at most {MAX_CALIBRATION_ROWS:,} (all are kept in memory): lower either"
        )
    return settings, card


def quantize_file(src: Path, dst: Path, settings: QuantSettings, feeds: list[dict]) -> None:
    """ONNX Runtime's quantize_static with ``settings``, calibrated on ``feeds``."""
    import onnx
    from onnxruntime.quantization import quantize_static

    kwargs = static_kwargs(onnx.load(str(src)), settings)
    # quantize_static writes <model>-inferred.onnx beside its input, then removes it: beside a copy
    with tempfile.TemporaryDirectory(prefix="ddpm-deploy-quantize-") as tmp:
        model = Path(tmp) / "model.onnx"
        copy_model(src, model, "quantize")
        with _quiet_root_logger():
            quantize_static(str(model), str(dst), _Reader(feeds), **kwargs)


@contextlib.contextmanager
def _quiet_root_logger():
    """quantize_static logs advice through the root logger; keep the CLI's output to our report."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _stamp(path: Path, card: dict, settings: QuantSettings, setting: str, batches: int,
           batch: int, seed: int, report: GateReport) -> None:  # fmt: skip
    import onnx

    q = onnx.load(str(path))
    props = {p.key: p.value for p in q.metadata_props}
    data = {
        "forward": f"{card['dataset']} training images through the forward process, t uniform",
        "sampler": "the fp32 model's own inputs in its default sampler, every timestep alike",
    }[settings.calibration]
    new = {
        **card,
        "precision": "int8",
        "calibration": {
            "setting": setting,
            **settings.describe(),
            "data": data,
            "batches": batches,
            "batch": batch,
            "seed": seed,
            "method": f"onnxruntime quantize_static {settings.method}, QDQ, per-channel weights",
        },
        "int8_gate": report.to_dict(),
    }
    props.update({CARD_KEY: dumps(new), "ddpm_deploy.precision": "int8"})
    del q.metadata_props[:]
    onnx.helper.set_model_props(q, props)
    onnx.checker.check_model(q)
    onnx.save(q, str(path))
