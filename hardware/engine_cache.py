"""The TensorRT engine cache: keys and JSON sidecars (torch-free, TensorRT-free, testable anywhere).

An engine is only valid for the ONNX file, TensorRT version, GPU model, precision and batch profile
it was built for. Each engine file has a JSON sidecar with those facts (and the model card, since an
engine carries no metadata); loading checks the sidecar against the running machine.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ddpm_deploy.errors import UserError
from ddpm_deploy.files import write_text_atomic

INSTALL_TRT = (
    "install TensorRT, Polygraphy and cuda-python for your driver's CUDA major (`pip install "
    "'ddpm-deploy[trt-cu12]' --extra-index-url https://pypi.nvidia.com`, or trt-cu13; "
    "JetPack ships TensorRT on Jetson, see Dockerfile.jetson)"
)


@dataclass(frozen=True)
class BatchProfile:
    min: int = 1
    opt: int = 16
    max: int = 100

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise UserError(
                f"batch profile needs 1 <= min <= opt <= max, got min={self.min} opt={self.opt} "
                f"max={self.max}; fix --min-batch/--opt-batch/--max-batch"
            )

    def check(self, batch: int) -> None:
        if not self.min <= batch <= self.max:
            raise UserError(
                f"batch {batch} is outside this engine's profile (min {self.min}, max {self.max}); "
                f"rebuild it with `ddpm-deploy build-engine MODEL.onnx --max-batch {max(batch, self.max)} --rebuild`"
            )

    def shapes(self, name: str, image: tuple[int, int, int]) -> tuple[tuple[int, ...], ...]:
        """(min, opt, max) shapes of input `name` (x: N x ``image``, the card's C, H, W; t, y: N)."""
        tail = tuple(image) if name == "x" else ()
        return tuple((n, *tail) for n in (self.min, self.opt, self.max))


@dataclass(frozen=True)
class EngineKey:
    onnx_sha256: str
    tensorrt: str
    gpu: str
    compute_capability: str
    precision: str
    profile: BatchProfile

    def digest(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def filename(self, stem: str) -> str:
        return f"{stem}.{self.precision}.{self.digest()}.engine"


def sidecar_path(engine: Path) -> Path:
    return engine.with_suffix(".json")


def write_sidecar(engine: Path, key: EngineKey, card: dict, build_seconds: float) -> None:
    record = {
        "key": asdict(key),
        "digest": key.digest(),
        "build_seconds": round(build_seconds, 1),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "card": card,
    }
    write_text_atomic(sidecar_path(engine), json.dumps(record, indent=2, sort_keys=True) + "\n")


def read_sidecar(engine: Path) -> dict:
    path = sidecar_path(engine)
    if not path.is_file():
        raise UserError(
            f"{engine} has no sidecar {path.name}: an engine carries no model metadata; rebuild it "
            "with `ddpm-deploy build-engine MODEL.onnx`"
        )
    try:
        record = json.loads(path.read_text())
        record["key"]["profile"] = BatchProfile(**record["key"]["profile"])
        EngineKey(**record["key"])
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path} is not an engine sidecar ({e}); rebuild the engine") from None
    return record


def check_sidecar(
    engine: Path, record: dict, tensorrt: str, gpu: str, compute_capability: str
) -> None:
    """Refuse an engine built for another TensorRT or GPU, saying how to rebuild."""
    key = record["key"]
    problems = []
    if key["tensorrt"] != tensorrt:
        problems.append(f"TensorRT {key['tensorrt']} (this machine has {tensorrt})")
    if key["gpu"] != gpu or key["compute_capability"] != compute_capability:
        problems.append(
            f"GPU {key['gpu']} sm_{key['compute_capability']} (this machine has {gpu} "
            f"sm_{compute_capability})"
        )
    if problems:
        raise UserError(
            f"{engine.name} was built for {' and '.join(problems)}; engines are not portable: "
            "rebuild it here with `ddpm-deploy build-engine MODEL.onnx --rebuild`"
        )
