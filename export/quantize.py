"""`ddpm-deploy quantize --int8`: post-training static quantization into a QDQ ONNX model.

ONNX Runtime's ``quantize_static`` writes QuantizeLinear/DequantizeLinear pairs (per-channel int8
weights, per-tensor int8 activations, both symmetric): the form ONNX Runtime's CPU kernels, OpenVINO
and TensorRT's explicit (strongly typed) INT8 all take, with no TensorRT calibrator. It is chosen
over NVIDIA's Model Optimizer because it installs with onnxruntime (already a dependency) and runs
on any CPU, where the file is checked before it is written.

Only convolutions are quantized, except the first (it sees x_t directly) and the last (it writes
eps): normalisations, attention (matmuls and softmax), the timestep and label paths and every
elementwise op stay fp32. Calibration inputs are what the model really sees: x_t from the forward
process on training images over the whole range of t (with real labels, 10% null, for
class-conditional models). The int8 model is compared with fp32 per timestep; nothing is written
when the error exceeds the stated bounds.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ddpm_deploy.card import CARD_KEY, card_schedule, dumps, num_classes
from ddpm_deploy.datasets import load_split, to_model_space
from ddpm_deploy.errors import UserError
from ddpm_deploy.files import atomic_path
from ddpm_deploy.onnx_model import read_card

# Bounds on sqrt(1 - alpha_bar_t) |eps_int8 - eps_fp32| over all checked timesteps: the error in
# the noise component of x_t that a reverse step removes. Unweighted, eps errors near t = 0 look
# large (p99 0.4 at t = 0 on an early checkpoint) but move x by 1% of that; at t >= 500 the weight
# is about 1. Raw eps statistics are reported beside the weighted ones.
MEDIAN_BOUND, P99_BOUND = 0.02, 0.1
CHECK_TIMESTEPS = (0, 10, 100, 250, 500, 750, 900, 999)


def forward_batches(
    card: dict, data_root, batches: int, batch: int, seed: int, train: bool = True
) -> list[dict[str, np.ndarray]]:
    """x_t = sqrt(ab) x0 + sqrt(1 - ab) eps on dataset images, t uniform over [0, T)."""
    split = load_split(card["dataset"], data_root, train=train)
    schedule, k = card_schedule(card), num_classes(card)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(batches):
        idx = rng.integers(0, len(split.images), batch)
        x0 = to_model_space(split.images[idx])
        t = rng.integers(0, schedule.T, batch, dtype=np.int64)
        out.append(_noised(x0, t, schedule, rng, split.labels[idx], k))
    return out


def _noised(x0, t, schedule, rng, labels, k) -> dict[str, np.ndarray]:
    ab = schedule.alpha_bars[t][:, None, None, None]
    eps = rng.standard_normal(x0.shape)
    feed = {"x": (np.sqrt(ab) * x0 + np.sqrt(1 - ab) * eps).astype(np.float32), "t": t}
    if k:
        y = labels.astype(np.int64)
        feed["y"] = np.where(rng.random(len(y)) < 0.1, k, y)
    return feed


class _Reader:
    """onnxruntime.quantization's CalibrationDataReader protocol over prepared batches."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self.feeds = iter(feeds)

    def get_next(self):
        return next(self.feeds, None)

    def rewind(self):  # pragma: no cover - only used by some calibrators
        pass


def excluded_convs(model) -> list[str]:
    """The first conv (fed by x) and the last (producing eps): kept fp32."""
    producers = {o: n for n in model.graph.node for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    first = [n.name for n in convs if "x" in n.input]
    last = []
    frontier = [o.name for o in model.graph.output]
    while frontier and not last:  # walk back from eps to the nearest conv
        node = producers.get(frontier.pop(0))
        if node is None:
            continue
        if node.op_type == "Conv":
            last.append(node.name)
        else:
            frontier.extend(node.input)
    return first + last


@dataclass
class Int8Error:
    median: float  # of the weighted error, all checked timesteps together
    p99: float
    max: float
    per_t: dict[int, tuple[float, float, float]]  # raw |eps difference| per t: median, p99, max

    @property
    def ok(self) -> bool:
        return self.median <= MEDIAN_BOUND and self.p99 <= P99_BOUND

    def __str__(self) -> str:
        lines = [
            "int8 vs fp32, sqrt(1 - alpha_bar_t) |eps difference|: "
            f"median {self.median:.2e} (bound {MEDIAN_BOUND}), p99 {self.p99:.2e} "
            f"(bound {P99_BOUND}), max {self.max:.2e}; raw |eps difference| per t:"
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
    split = load_split(card["dataset"], data_root, train=False)
    schedule, k = card_schedule(card), num_classes(card)
    rng = np.random.default_rng(1)
    idx = rng.integers(0, len(split.images), batch)
    x0 = to_model_space(split.images[idx])
    per_t, diffs = {}, []
    for t in CHECK_TIMESTEPS:
        feed = _noised(x0, np.full(batch, t, np.int64), schedule, rng, split.labels[idx], k)
        a, b = (s.run(["eps"], feed)[0].astype(np.float64) for s in sessions)
        d = np.abs(a - b).ravel()
        per_t[t] = (float(np.median(d)), float(np.percentile(d, 99)), float(d.max()))
        diffs.append(d * np.sqrt(1.0 - schedule.alpha_bars[t]))
    d = np.concatenate(diffs)
    return Int8Error(float(np.median(d)), float(np.percentile(d, 99)), float(d.max()), per_t)


def quantize_int8(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    data_root=None,
    batches: int = 16,
    batch: int = 32,
    seed: int = 0,
) -> Int8Error:
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    src, dst = Path(src), Path(dst)
    if dst.suffix != ".onnx":
        raise UserError(f"-o {dst}: the output file must end in .onnx")
    card = read_card(src)  # one line for a file without a card
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
    feeds = forward_batches(card, data_root, batches, batch, seed)
    with atomic_path(dst) as tmp, _quiet_root_logger():
        quantize_static(
            str(src),
            str(tmp),
            _Reader(feeds),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv"],
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=excluded_convs(model),
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
        )
        err = int8_error(src, tmp, card, data_root)
        if not err.ok:
            raise UserError(
                f"the int8 model is too far from fp32 (weighted eps error median {err.median:.3f}, "
                f"p99 {err.p99:.3f}; bounds {MEDIAN_BOUND}, {P99_BOUND}); nothing was written"
            )
        _stamp(tmp, card, batches, batch, seed)
    return err


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


def _stamp(path: Path, card: dict, batches: int, batch: int, seed: int) -> None:
    import onnx

    q = onnx.load(str(path))
    props = {p.key: p.value for p in q.metadata_props}
    new = {
        **card,
        "precision": "int8",
        "calibration": {
            "data": f"{card['dataset']} training images through the forward process, t uniform",
            "batches": batches,
            "batch": batch,
            "seed": seed,
            "method": "onnxruntime quantize_static MinMax, QDQ, symmetric, per-channel weights",
            "quantized_ops": ["Conv (all but the first and last)"],
        },
    }
    props.update({CARD_KEY: dumps(new), "ddpm_deploy.precision": "int8"})
    del q.metadata_props[:]
    onnx.helper.set_model_props(q, props)
    onnx.checker.check_model(q)
    onnx.save(q, str(path))
