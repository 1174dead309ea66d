"""learn-sampler's fitting (export/learn_sampler.py runs it): the teacher's images and the
student's pixel loss on fixed noises (``Problem``), the grid as LD3's softmax over log-SNR, the
choice of the analytic-step count, and Nelder-Mead over the grid and DPM-Solver++(2M)
corrections. Everything runs on the runtime's own sampler and backends: no torch."""

from __future__ import annotations

import numpy as np


class Problem:
    """The teacher's images and the student's loss for one set of starting noises: ``n`` images of
    noise ``seed`` (random classes on a conditional model) at ``guidance``; ``teacher`` holds
    ``sample()``'s keyword arguments of the teacher sampler."""

    def __init__(self, denoiser, n: int, teacher: dict, guidance: float, seed: int):
        from ddpm_deploy.runtime.guidance import RANDOM, Guided, labels_for
        from ddpm_deploy.runtime.noise import PerImageNoise
        from ddpm_deploy.runtime.samplers import sample

        self.den, self.n, self.sample = denoiser, n, sample
        labels = labels_for(denoiser.card, RANDOM if denoiser.num_classes else None, n, seed)
        self.guided = Guided(denoiser, labels, guidance)
        self.noise = lambda: PerImageNoise(seed, 0, n)
        self.teacher = sample(self.guided, denoiser.schedule, n, self.noise(), **teacher)

    def images(self, timesteps: np.ndarray, analytic: int, mix: np.ndarray | None) -> np.ndarray:
        return self.sample(
            self.guided,
            self.den.schedule,
            self.n,
            self.noise(),
            sampler="dpm++2m",
            timesteps=timesteps,
            analytic=analytic,
            mix=None if mix is None else tuple(mix),
        )

    def loss(self, timesteps: np.ndarray, analytic: int, mix: np.ndarray | None = None) -> float:
        return float(np.abs(self.images(timesteps, analytic, mix) - self.teacher).mean())


def grid_from_logits(logits: np.ndarray, schedule) -> np.ndarray:
    """len(logits) + 1 distinct integer timesteps from T-1 down to 0: the log-SNR gaps are
    softmax(logits) of the whole range (LD3's parameterisation), mapped as timesteps_for does."""
    from ddpm_deploy.runtime.timesteps import distinct_descending

    T, ab = schedule.T, schedule.alpha_bars
    lam = np.log(ab) - np.log1p(-ab)
    w = np.exp(logits - logits.max())
    targets = lam[T - 1] + np.concatenate([[0.0], np.cumsum(w / w.sum())]) * (lam[0] - lam[T - 1])
    ts = np.interp(targets, lam[::-1], np.arange(T - 1, -1, -1, dtype=np.float64)).round()
    return distinct_descending(ts.astype(np.int64), T)


def logits_for(timesteps: np.ndarray, schedule) -> np.ndarray:
    """The logits whose grid is ``timesteps`` (its ends T-1 and 0)."""
    ab = schedule.alpha_bars[timesteps]
    return np.log(np.diff(np.log(ab) - np.log1p(-ab)))


def choose_analytic(problem: Problem, calls: int, schedule) -> tuple[int, list[dict]]:
    from ddpm_deploy.runtime.timesteps import timesteps_for

    tried = []
    for k in range(0, calls + 3):
        ts = timesteps_for(schedule.T, calls + k, "edm", schedule)
        tried.append({"analytic": k, "timesteps": ts.tolist(), "loss": problem.loss(ts, k)})
    best = min(tried, key=lambda r: r["loss"])
    return best["analytic"], tried


def fit_sampler(
    problem: Problem, timesteps: np.ndarray, analytic: int, evals: int, schedule
) -> tuple[np.ndarray, np.ndarray, float]:
    """Nelder-Mead over (grid logits, mix of steps 1..); returns the grid, the mix and the loss."""
    from scipy.optimize import minimize

    m = len(timesteps)
    start = np.concatenate([logits_for(timesteps, schedule), np.zeros(m - 1)])

    def unpack(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return grid_from_logits(theta[: m - 1], schedule), np.concatenate([[0.0], theta[m - 1 :]])

    from tqdm.auto import tqdm

    bar = tqdm(total=evals, desc="learn-sampler", unit="eval")
    best = [np.inf]

    def objective(theta: np.ndarray) -> float:
        grid, mix = unpack(theta)
        loss = problem.loss(grid, analytic, mix)
        best[0] = min(best[0], loss)
        bar.update()
        bar.set_postfix(best=f"{best[0]:.5f}", refresh=False)
        return loss

    simplex = [start] + [
        start + np.eye(len(start))[j] * (0.4 if j < m - 1 else 0.15) for j in range(len(start))
    ]
    try:
        result = minimize(
            objective,
            start,
            method="Nelder-Mead",
            options={
                "maxfev": evals,
                "initial_simplex": np.array(simplex),
                "adaptive": True,
                "xatol": 1e-3,
                "fatol": 1e-6,
            },
        )
    finally:
        bar.close()
    grid, mix = unpack(result.x)
    return grid, mix, float(result.fun)
