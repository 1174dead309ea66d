"""Reading a ddpm-deploy ONNX file: its inputs and outputs, and its model card.

Shared by the runtime (every ONNX Runtime session) and export (engine builds), so it lives in the
core package; it needs onnxruntime, a base dependency, and never torch. onnx is imported only by
``copy_model``, lazily, to merge a model's external data (the sampler and export extras have it).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import onnxruntime as ort

from ddpm_deploy.card import CARD_KEY, image_shape, num_classes, parse_card
from ddpm_deploy.errors import UserError
from ddpm_deploy.files import regular_input

REEXPORT = "re-export it with `ddpm-deploy export CHECKPOINT -o model.onnx`"
IMAGE_CHANNELS = (1, 3)  # grey or RGB


def _signature(shape: tuple[int, int, int] | None, kind: str) -> str:
    """The denoiser's signature in words, for the image shape of a card (or any, before one is read)."""
    x = "N," + (",".join(map(str, shape)) if shape else "C,H,W")
    labels = ", y: int64[N]" if kind else " (, y: int64[N])"
    return f"x: float32[{x}], t: int64[N]{labels} and returns eps: float32[{x}]"


def _io_matches(got: list, outs: list, shape: list | None, conditional: bool | None) -> bool:
    """x: float[N, *shape], t (and y) int64[N], eps like x; any C x H x W image when shape is None."""
    names = [g[0] for g in got]
    if names not in (["x", "t"], ["x", "t", "y"]) or conditional is (len(names) == 2):
        return False
    scalar = [(n, "tensor(int64)", []) for n in names[1:]]
    x = got[0]
    image_ok = x[1] == "tensor(float)" and (
        x[2] == shape
        if shape is not None
        else len(x[2]) == 3 and x[2][0] in IMAGE_CHANNELS and all(isinstance(d, int) for d in x[2])
    )
    return image_ok and got[1:] == scalar and outs == [("eps", "tensor(float)", x[2])]


def check_io(session: ort.InferenceSession, path: Path, card: dict | None = None) -> None:
    """Inputs x, t (and y for a class-conditional card; either form before the card is read), x of
    the card's image shape (any C x H x W before the card is read), eps shaped like x."""
    got = [(i.name, i.type, list(i.shape[1:])) for i in session.get_inputs()]
    outs = [(o.name, o.type, list(o.shape[1:])) for o in session.get_outputs()]
    shape = list(image_shape(card)) if card is not None else None
    conditional = bool(num_classes(card)) if card is not None else None
    if not _io_matches(got, outs, shape, conditional):
        kind = "class-conditional " if conditional else ""
        raise UserError(
            f"{path} has inputs {got} and outputs {outs}; a {kind}ddpm-deploy denoiser takes "
            f"{_signature(tuple(shape) if shape else None, kind)}; {REEXPORT}"
        )


GRAPH_KEY = "sampler_graph"  # the card entry of a whole-sampler file (`export-sampler`)


def refuse_sampler_file(card: dict, path: str | Path, command: str) -> None:
    """One line when ``path`` is a sampler file (`export-sampler`) where ``command`` needs the
    denoiser it was built from (its network calls, not the whole loop)."""
    if GRAPH_KEY in card:
        raise UserError(
            f"{path} holds its whole sampler (`export-sampler`); {command} works on the denoiser: "
            "pass the model it was exported from"
        )


def check_graph_io(session: ort.InferenceSession, path: Path, card: dict) -> None:
    """A sampler graph (export/sampler_graph.py): inputs seed, index or noise (and y), outputs x0
    and image."""
    names = [i.name for i in session.get_inputs()]
    outs = [o.name for o in session.get_outputs()]
    start = ["seed", "index"] if card[GRAPH_KEY].get("noise") == "seed" else ["noise"]
    expected = start + (["y"] if num_classes(card) else [])
    if names != expected or outs != ["x0", "image"]:
        raise UserError(
            f"{path} says it holds a whole sampler but has inputs {names} and outputs {outs} "
            f"(expected {expected} and ['x0', 'image']); write it again with `ddpm-deploy export-sampler`"
        )


def card_of(session: ort.InferenceSession, path: Path) -> dict:
    """The file's card, checked (ddpm_deploy/card.py ``parse_card``: the one check of every card),
    and the graph's inputs and outputs against it."""
    meta = session.get_modelmeta().custom_metadata_map
    if CARD_KEY not in meta:
        check_io(session, path)  # a graph that is no denoiser says so before its missing card
        raise UserError(f"{path} lacks model metadata [{CARD_KEY!r}]; {REEXPORT}")
    card = parse_card(meta[CARD_KEY], str(path), REEXPORT)
    if GRAPH_KEY in card:
        check_graph_io(session, path, card)
    else:
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
    regular_input(path)  # ONNX Runtime would block on a FIFO for ever
    if Path(path).is_dir() or Path(path).suffix == ".safetensors":  # "Protobuf parsing failed"
        what = "a folder" if Path(path).is_dir() else "a training checkpoint"
        torch = " (or run a checkpoint with --backend torch)" if hint == REEXPORT else ""
        raise UserError(f"{path} is {what}, not an ONNX file; {hint}{torch}")
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


def copy_model(src: Path, dst: Path, command: str) -> None:
    """Copy the ONNX file ``src`` to ``dst`` so that ``dst`` loads alone: as it is, or, when it
    keeps its weights in files beside it (ONNX external data), merged into one file with onnx.
    Whether it needs them is asked of ONNX Runtime itself: the copy, alone in a new folder, loads
    or it does not (no second reader of the protobuf)."""
    shutil.copyfile(src, dst)
    try:
        plain_session(dst)
        return
    except UserError:
        dst.unlink()
    merge = f"python -c \"import onnx; onnx.save(onnx.load('{src}'), 'one-file.onnx')\""
    try:
        import onnx
    except ImportError:
        raise UserError(
            f"{src} keeps its weights in files beside it (ONNX external data) and {command} "
            f"copies one file: pip install onnx to merge them, or merge them yourself: {merge}"
        ) from None
    try:
        onnx.save(onnx.load(str(src)), str(dst))
    except Exception as e:  # noqa: BLE001 - onnx refuses a linked data file, a proto over 2 GB...
        dst.unlink(missing_ok=True)
        why = " ".join(str(e).split())[:200]
        raise UserError(
            f"{src} could not be merged into one file for {command} ({why}); merge it yourself: "
            f"{merge}"
        ) from None
    plain_session(dst)
