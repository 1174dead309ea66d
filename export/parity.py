"""PyTorch vs ONNX Runtime parity on the same random inputs (optimum-style: collect every mismatch)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ddpm_deploy.card import MNIST_SHAPE

# fp32 bound on |eps_torch - eps_ort|. ORT fuses conv+activation and sums LayerNorm in another
# order than torch, so bit-identity is not expected. Measured max over the 12 cases: 4.2e-06 on the
# 20-epoch Fashion-MNIST model, 1e-07 on a random one (`ddpm-deploy export` prints every case).
FP32_ATOL = 1e-5
BATCHES = (1, 16, 100)


@dataclass
class ParityCase:
    batch: int
    timesteps: str
    max_abs: float
    mean_abs: float
    atol: float

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.max_abs)) and self.max_abs <= self.atol

    def __str__(self) -> str:
        flag = "ok" if self.ok else "MISMATCH"
        return (
            f"batch {self.batch:>3}  t={self.timesteps:<14} max |diff| {self.max_abs:.2e}  "
            f"mean |diff| {self.mean_abs:.2e}  (atol {self.atol:.0e}) {flag}"
        )


def timestep_sets(batch: int, T: int, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """Timesteps spread over [0, T): both ends, the middle, and a random mix."""
    sets = [(str(t), np.full(batch, t, dtype=np.int64)) for t in (0, T // 2, T - 1)]
    sets.append(("random", rng.integers(0, T, batch, dtype=np.int64)))
    return sets


def compare(
    reference,
    candidate,
    T: int,
    batches=BATCHES,
    atol: float = FP32_ATOL,
    seed: int = 0,
    num_classes: int = 0,
    shape: tuple[int, int, int] = MNIST_SHAPE,
) -> list[ParityCase]:
    """Run two denoisers (callables on numpy arrays) on identical inputs; one case per (batch, t set).

    ``shape``: the model's (C, H, W), from its card (``image_shape``). A class-conditional model
    (``num_classes`` K > 0) also gets random labels y in 0..K, the null label K included, so every
    input of the graph is exercised."""
    rng = np.random.default_rng(seed)
    cases = []
    for batch in batches:
        for label, t in timestep_sets(batch, T, rng):
            x = rng.standard_normal((batch, *shape), dtype=np.float32)
            extra = (
                (rng.integers(0, num_classes + 1, batch, dtype=np.int64),) if num_classes else ()
            )
            a, b = reference(x, t, *extra), candidate(x, t, *extra)
            diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
            cases.append(ParityCase(batch, label, float(diff.max()), float(diff.mean()), atol))
    return cases


def torch_callable(model):
    import torch

    def run(x: np.ndarray, t: np.ndarray, *y: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(*(torch.from_numpy(v) for v in (x, t, *y))).numpy()

    return run


def ort_callable(path: Path):
    from ddpm_deploy.onnx_model import open_session, session_options

    session = open_session(path, options=session_options())
    names = [i.name for i in session.get_inputs()]
    return lambda *inputs: session.run(["eps"], dict(zip(names, inputs, strict=True)))[0]
