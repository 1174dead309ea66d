"""What one sampler graph runs (export/sampler_graph.py): the grid, the method, guidance, where its
noise comes from, resolved and checked from a model's sampler settings before anything is built."""

from __future__ import annotations

from dataclasses import dataclass

from ddpm_deploy.runtime.methods import SAMPLERS
from ddpm_deploy.runtime.sampler_settings import SamplerSettings

from ddpm_deploy.card import card_schedule
from ddpm_deploy.errors import UserError

NOISE_MODES = ("seed", "input")
# what each target runs: the generator's xor (TensorRT 10 imports no bitwise operator) and the
# analytic step's precision (float64 as numpy computes it; TensorRT and WebGPU have no float64)
TARGETS = {
    "ort": ("bitwise", "float64"),  # ONNX Runtime (any binding, CPU or GPU), OpenVINO
    "tensorrt": ("arithmetic", "float32"),
    "web": ("bitwise", "float32"),  # ONNX Runtime Web, WebAssembly or WebGPU
}
MAX_CALLS = 64  # unrolled network calls per graph: beyond this the file is mostly repeated nodes


@dataclass(frozen=True)
class GraphPlan:
    """What one sampler graph runs, resolved from the settings: the grid, the method, guidance."""

    sampler: str
    timesteps: tuple[int, ...]
    analytic: int
    mix: tuple[float, ...] | None
    clip: bool
    eta: float
    variance: str
    guidance: float
    noise: str = "seed"
    target: str = "ort"
    precision: str = "fp32"  # the denoiser's: fp16 for GPUs (export/fp16.py), the steps stay fp32

    @classmethod
    def resolve(
        cls,
        card: dict,
        settings: SamplerSettings,
        guidance: float,
        noise: str,
        target: str = "ort",
        precision: str = "fp32",
    ) -> GraphPlan:
        """``settings`` already resolved for the model (``SamplerSettings.for_model``)."""
        if noise not in NOISE_MODES:
            raise UserError(f"unknown --noise {noise!r}; choose from {list(NOISE_MODES)}")
        if precision not in ("fp32", "fp16"):
            raise UserError(f"unknown --precision {precision!r}; choose from ['fp32', 'fp16']")
        if target not in TARGETS:
            raise UserError(f"unknown --target {target!r}; choose from {list(TARGETS)}")
        ts = settings.grid(card_schedule(card))
        method = SAMPLERS[settings.sampler]
        stochastic = method.stochastic_when == "always" or (
            method.stochastic_when == "eta" and settings.eta > 0
        )
        if stochastic and noise == "input":
            raise UserError(
                f"--sampler {settings.sampler} draws noise at every step; a graph with "
                "--noise input takes only x_T: use --noise seed (the graph's own generator)"
            )
        plan = cls(
            sampler=settings.sampler,
            timesteps=ts,
            analytic=settings.analytic or 0,
            mix=settings.mix,
            clip=settings.clip,
            eta=settings.eta,
            variance=settings.variance,
            guidance=float(guidance),
            noise=noise,
            target=target,
            precision=precision,
        )
        if plan.network_calls > MAX_CALLS:
            raise UserError(
                f"{plan.network_calls} network calls per image: a sampler graph unrolls at most "
                f"{MAX_CALLS}; choose fewer --steps"
            )
        return plan

    @property
    def xor(self) -> str:
        return TARGETS[self.target][0]

    @property
    def analytic_dtype(self) -> str:
        return TARGETS[self.target][1]

    @property
    def network_calls(self) -> int:
        return len(self.timesteps) - self.analytic

    def to_json(self) -> dict:
        out = {
            "sampler": self.sampler,
            "timesteps": list(self.timesteps),
            "analytic": self.analytic,
            "clip": self.clip,
            "guidance": self.guidance,
            "noise": self.noise,
            "target": self.target,
            "xor": self.xor,
            "analytic_dtype": self.analytic_dtype,
            "precision": self.precision,
        }
        if self.mix is not None:
            out["mix"] = list(self.mix)
        if self.eta:
            out["eta"] = self.eta
        if self.sampler == "ddpm":
            out["variance"] = self.variance
        return out
