"""`ddpm-deploy bench`: per-step latency of the sampling loop per backend and batch size, the share
spent outside the denoiser, and achieved FLOP/s against a same-run float32 matrix product.

Backends are timed alternately, round by round, so a noisy machine slows them alike.
"""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np
from ddpm_deploy.runtime.backends import Denoiser
from ddpm_deploy.runtime.noise import PerImageNoise
from ddpm_deploy.runtime.sampler_spec import model_spec
from ddpm_deploy.runtime.samplers import sample

from ddpm_deploy.errors import UserError


def matmul_flops(n: int = 1024, repeats: int = 5) -> float:
    """Best-of FLOP/s of an n x n float32 matrix product through numpy's BLAS (the CPU's practical limit)."""
    rng = np.random.default_rng(0)
    a, b = (
        rng.standard_normal((n, n), dtype=np.float32),
        rng.standard_normal((n, n), dtype=np.float32),
    )
    a @ b  # warm up the BLAS threads
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


class _Timed:
    """Wraps a denoiser and records the seconds spent inside each call."""

    def __init__(self, inner: Denoiser):
        self.inner, self.seconds = inner, []

    def __call__(self, x, t):
        t0 = time.perf_counter()
        out = self.inner(x, t)
        self.seconds.append(time.perf_counter() - t0)
        return out


class _TimedNoise:
    """The runtime's per-image noise (one Philox stream per image), timed draw by draw."""

    def __init__(self, seed: int, batch: int):
        self.inner, self.seconds = PerImageNoise(seed, 0, batch), []

    def standard_normal(self, shape, dtype=np.float64):
        t0 = time.perf_counter()
        out = self.inner.standard_normal(shape, dtype=dtype)
        self.seconds.append(time.perf_counter() - t0)
        return out


@dataclass
class BenchRow:
    backend: str
    batch: int
    steps_timed: int
    step_ms_median: float
    step_ms_p90: float
    step_ms_p99: float
    images_per_s_ddpm1000: float
    images_per_s_ddim50: float
    images_per_s_own: (
        float | None
    )  # at the model's own sampler (learned or distilled: its card's network calls per image)
    overhead_share: float  # of each step, outside the denoiser (the numpy update and the noise)
    noise_share: float  # of each step, drawing the per-image noise (median draw / median step)
    achieved_gflops: float
    matmul_gflops: float

    @property
    def flops_ratio(self) -> float:
        return self.achieved_gflops / self.matmul_gflops


def _one_run(
    den: Denoiser, batch: int, steps: int, seed: int
) -> tuple[list[float], list[float], list[float]]:
    """DDPM respaced to steps + 1 (noise is drawn at every step but the last): seconds of each
    step after the first, of each denoiser call in them, and of each step's noise draw."""
    timed, noise = _Timed(den), _TimedNoise(seed, batch)
    marks: list[float] = []
    sample(
        timed,
        den.schedule,
        batch,
        noise,
        sampler="ddpm",
        steps=steps + 1,
        shape=den.image_shape,
        callback=lambda i, t, x: marks.append(time.perf_counter()),
    )
    # noise.seconds[0] is x_T; draws 1..steps belong to steps 0..steps-1 (none after the last)
    return list(np.diff(marks)), timed.seconds[1:], noise.seconds[2:]


def bench(
    denoisers: dict[str, Denoiser],
    batches: list[int],
    steps: int = 50,
    rounds: int = 3,
    flops_per_image: int | None = None,
    progress: bool = True,
) -> tuple[list[BenchRow], dict]:
    if steps < 2 or rounds < 1 or not batches or min(batches) < 1:
        raise UserError("bench needs --steps >= 2, --rounds >= 1 and positive --batch sizes")
    peak = matmul_flops()
    rows = []
    for batch in batches:
        per_backend: dict[str, tuple[list[float], ...]] = {k: ([], [], []) for k in denoisers}
        for den in denoisers.values():  # warm-up: first calls allocate and pick kernels
            _one_run(den, batch, 2, seed=0)
        for r in range(rounds):
            for name, den in denoisers.items():
                for collected, new in zip(
                    per_backend[name], _one_run(den, batch, steps, r), strict=True
                ):
                    collected.extend(new)
                step_s = per_backend[name][0][-steps:]
                if progress:
                    print(
                        f"  batch {batch} round {r + 1}/{rounds} {name}: {np.median(step_s) * 1e3:.2f} ms/step",
                        file=sys.stderr,
                    )
        peak_now = max(peak, matmul_flops())  # re-measured beside each batch size, the best kept
        for name, (step_s, den_s, noise_s) in per_backend.items():
            med = float(np.median(step_s))
            spec = model_spec(denoisers[name].card)  # its network calls: analytic steps cost none
            own = spec.calls if spec else None
            achieved = (flops_per_image or 0) * batch / float(np.median(den_s))
            rows.append(
                BenchRow(
                    backend=name,
                    batch=batch,
                    steps_timed=len(step_s),
                    step_ms_median=med * 1e3,
                    step_ms_p90=float(np.percentile(step_s, 90)) * 1e3,
                    step_ms_p99=float(np.percentile(step_s, 99)) * 1e3,
                    images_per_s_ddpm1000=batch / (med * 1000),
                    images_per_s_ddim50=batch / (med * 50),
                    images_per_s_own=batch / (med * own) if own else None,
                    overhead_share=1.0 - sum(den_s) / sum(step_s),
                    noise_share=float(np.median(noise_s)) / med,
                    achieved_gflops=achieved / 1e9,
                    matmul_gflops=peak_now / 1e9,
                )
            )
    info = {
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "flops_per_image": flops_per_image,
        "steps": steps,
        "rounds": rounds,
    }
    return rows, info


def table(rows: list[BenchRow], info: dict) -> str:
    head = (
        f"{'backend':<13} {'batch':>5} {'ms/step p50':>11} {'p90':>7} {'p99':>7} "
        f"{'img/s DDPM1000':>14} {'img/s DDIM50':>12} {'img/s own':>9} {'overhead':>8} {'noise':>6} {'GFLOP/s':>8} {'vs matmul':>9}"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"{r.backend:<13} {r.batch:>5} {r.step_ms_median:>11.2f} {r.step_ms_p90:>7.2f} "
            f"{r.step_ms_p99:>7.2f} {r.images_per_s_ddpm1000:>14.2f} {r.images_per_s_ddim50:>12.1f} "
            f"{'-' if r.images_per_s_own is None else f'{r.images_per_s_own:.1f}':>9} "
            f"{r.overhead_share:>8.1%} {r.noise_share:>6.2%} {r.achieved_gflops:>8.1f} {r.flops_ratio:>9.1%}"
        )
    lines.append(
        f"matmul peak {rows[0].matmul_gflops:.1f} GFLOP/s (numpy float32); model "
        f"{(info['flops_per_image'] or 0) / 1e6:.1f} MFLOP/image/step; peak RSS of this process "
        f"{info['peak_rss_mb']:.0f} MB (all backends together)"
    )
    return "\n".join(lines)


def rows_as_dicts(rows: list[BenchRow]) -> list[dict]:
    return [{**asdict(r), "flops_ratio": r.flops_ratio} for r in rows]
