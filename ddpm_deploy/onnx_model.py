"""Reading a ddpm-deploy ONNX file: its inputs and outputs, and its model card.

Shared by the runtime (every ONNX Runtime session) and export (engine builds), so it lives in the
core package; it needs onnxruntime, a base dependency, and never torch or onnx.
"""

from __future__ import annotations

import json
from pathlib import Path

import onnxruntime as ort

from ddpm_deploy.card import CARD_KEY, num_classes, validate_card
from ddpm_deploy.errors import UserError

REEXPORT = "re-export it with `ddpm-deploy export CHECKPOINT -o model.onnx`"
# (name, element type, shape with the batch axis symbolic); class-conditional models add LABEL_INPUT
EXPECTED_INPUTS = [("x", "tensor(float)", [1, 28, 28]), ("t", "tensor(int64)", [])]
LABEL_INPUT = ("y", "tensor(int64)", [])


def check_io(session: ort.InferenceSession, path: Path, card: dict | None = None) -> None:
    """Inputs x, t (and y for a class-conditional card; either form before the card is read)."""
    got = [(i.name, i.type, list(i.shape[1:])) for i in session.get_inputs()]
    outs = [(o.name, o.type, list(o.shape[1:])) for o in session.get_outputs()]
    want_out = [("eps", "tensor(float)", [1, 28, 28])]
    conditional = [EXPECTED_INPUTS + [LABEL_INPUT]]
    allowed = [EXPECTED_INPUTS] if card is None or not num_classes(card) else []
    allowed += conditional if card is None or num_classes(card) else []
    if got not in allowed or outs != want_out:
        kind = "class-conditional " if card is not None and num_classes(card) else ""
        raise UserError(
            f"{path} has inputs {got} and outputs {outs}; a {kind}ddpm-deploy denoiser takes "
            f"x: float32[N,1,28,28], t: int64[N]{', y: int64[N]' if kind else ' (, y: int64[N])'} "
            f"and returns eps: float32[N,1,28,28]; {REEXPORT}"
        )


def card_of(session: ort.InferenceSession, path: Path) -> dict:
    check_io(session, path)
    meta = session.get_modelmeta().custom_metadata_map
    if CARD_KEY not in meta:
        raise UserError(f"{path} lacks model metadata [{CARD_KEY!r}]; {REEXPORT}")
    card = validate_card(json.loads(meta[CARD_KEY]), str(path), REEXPORT)
    check_io(session, path, card)
    return card


def session_options(threads: int | None = None, optimize: bool = True) -> ort.SessionOptions:
    """Every graph optimisation (or none: cheap, for reading a file), ``threads`` intra-op threads."""
    opts = ort.SessionOptions()
    level = ort.GraphOptimizationLevel
    opts.graph_optimization_level = level.ORT_ENABLE_ALL if optimize else level.ORT_DISABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
    return opts


def open_session(
    path: str | Path,
    hint: str = REEXPORT,
    options: ort.SessionOptions | None = None,
    providers: list | tuple = ("CPUExecutionProvider",),
) -> ort.InferenceSession:
    """An ONNX Runtime session for ``path``, or one line: not a loadable ONNX model (ONNX
    Runtime's first line), then ``hint``, what to do about it. The one place sessions are opened."""
    try:
        return ort.InferenceSession(str(path), options, providers=list(providers))
    except Exception as e:  # noqa: BLE001 - ORT raises its own pybind types for bad files
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{path} is not a loadable ONNX model ({first[:200]}); {hint}") from None


def plain_session(path: Path) -> ort.InferenceSession:
    """A CPU session without graph optimisation: cheap, for reading a file's inputs and card."""
    return open_session(path, options=session_options(optimize=False))


def read_card(path: str | Path) -> dict:
    """The model card of an exported ONNX file (checked like a model the sampler would run)."""
    path = Path(path)
    return card_of(plain_session(path), path)
