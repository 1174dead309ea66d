"""`ddpm-deploy export-web`: a static folder that samples an exported model in a web browser.

The folder holds index.html, the page's JavaScript (ddpm.js: no sampler of its own), the model's
whole sampler as one ONNX graph (sampler.onnx, export/sampler_graph.py: seed and image indices in,
uint8 images out, so the page draws `ddpm-deploy sample`'s images), its card as JSON (ONNX Runtime
Web does not expose metadata_props), config.json (the page's defaults), serve.py (a static server
with the COOP/COEP headers that allow WebAssembly threads) and ort/, the ONNX Runtime Web files
copied from an `npm ci --prefix web` of this repository's pinned web/package.json.

Torch-free: given a sampler file (`export-sampler`) it needs onnxruntime alone; given a model it
builds the sampler graph first, which needs onnx (the export extra).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ddpm_deploy import __version__
from ddpm_deploy.errors import UserError
from ddpm_deploy.files import (
    check_output,
    check_outputs,
    check_writable,
    refuse_overwriting_input,
    sha256_file,
)
from ddpm_deploy.onnx_model import GRAPH_KEY, copy_model
from ddpm_deploy.publish import publish

ORT_WEB_VERSION = "1.30.0"  # web/package.json pins exactly this
ORT_WASM = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
ORT_WEBGPU = (
    "ort.webgpu.min.mjs",
    "ort-wasm-simd-threaded.asyncify.mjs",
    "ort-wasm-simd-threaded.asyncify.wasm",
)
TEMPLATES = ("ddpm.js", "serve.py", "index.html")  # index.html last
MAX_N = 64  # images per run on the page (x2 rows with guidance)
DEFAULT_N = 16
MODEL_FILE = "sampler.onnx"
OLD_FILES = ("model.onnx", "samplers.js")  # an earlier export's, removed by --force
NPM_HINT = (
    "run `npm ci --prefix web` in a ddpm-deploy checkout (or `npm install onnxruntime-web@"
    f"{ORT_WEB_VERSION}` anywhere) and pass --node-modules PATH/node_modules"
)


def template_dir() -> Path:
    return Path(__file__).resolve().parent / "web-page"


def node_modules_candidates(given: str | os.PathLike | None) -> list[Path]:
    if given is not None:
        return [Path(given)]
    found = (
        [Path(os.environ["DDPM_DEPLOY_NODE_MODULES"])]
        if "DDPM_DEPLOY_NODE_MODULES" in os.environ
        else []
    )
    # a checkout (pip install -e .): export/ sits beside web/
    found.append(Path(__file__).resolve().parents[1] / "web" / "node_modules")
    found += [Path("web") / "node_modules", Path("node_modules")]
    return found


def find_ort_web(node_modules: str | os.PathLike | None = None, webgpu: bool = False) -> Path:
    """The onnxruntime-web dist/ folder holding the files the page needs, at the pinned version."""
    wanted = ORT_WASM + (ORT_WEBGPU if webgpu else ())
    tried = node_modules_candidates(node_modules)
    for root in tried:
        package = root / "onnxruntime-web"
        dist = package / "dist"
        if not (package / "package.json").is_file():
            continue
        version = json.loads((package / "package.json").read_text()).get("version")
        if version != ORT_WEB_VERSION:
            raise UserError(
                f"{package} is onnxruntime-web {version}; the page is built and tested against "
                f"{ORT_WEB_VERSION}: {NPM_HINT}"
            )
        missing = [name for name in wanted if not (dist / name).is_file()]
        if missing:
            raise UserError(f"{dist} lacks {missing}; {NPM_HINT}")
        return dist
    raise UserError(
        f"ONNX Runtime Web {ORT_WEB_VERSION} not found (looked in "
        f"{', '.join(str(p) for p in tried)}); {NPM_HINT}"
    )


def check_shape(card: dict) -> list[int]:
    shape = card.get("image", {}).get("shape")
    if not (
        isinstance(shape, list)
        and len(shape) == 3
        and all(isinstance(v, int) and v > 0 for v in shape)
    ):
        raise UserError(f"the card's image shape {shape!r} is not [C, H, W]")
    if shape[0] not in (1, 3):
        raise UserError(f"the page draws 1 or 3 channels; this model has {shape[0]}")
    return shape


def site_files(webgpu: bool) -> list[str]:
    """Every file of the page, index.html last (publish moves it into place last)."""
    ort = [f"ort/{name}" for name in ORT_WASM + (ORT_WEBGPU if webgpu else ())]
    return [*ort, MODEL_FILE, "card.json", "config.json", *TEMPLATES]


def check_out(out: Path, force: bool) -> None:
    """-o a new or empty folder (or, with --force, any folder), and every file export-web may
    write in it a file or absent: a FIFO or a folder there is refused before any work."""
    check_output(out, folder=True)
    check_writable(out, "-o")  # before the sampler graph is built; nothing is made yet
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UserError(
            f"-o {out} exists and is not empty; choose a new folder, or pass --force to write "
            "the page's files over it (other files stay)"
        )
    # a linked ort/ is replaced, not written through
    check_outputs(out, [*site_files(webgpu=True), *OLD_FILES])


def page_config(model: Path, name: str, webgpu: bool) -> dict:
    """config.json: what the page loads, ``model`` the sampler file as the site ships it."""
    return {
        "format": "ddpm-deploy-web/2",
        "model": MODEL_FILE,
        "model_name": name,
        "model_sha256": sha256_file(model),
        "card": "card.json",
        "defaults": {"n": DEFAULT_N, "seed": 0},
        "max_n": MAX_N,
        "ort": {
            "version": ORT_WEB_VERSION,
            "wasm": f"ort/{ORT_WASM[0]}",
            "webgpu": f"ort/{ORT_WEBGPU[0]}" if webgpu else None,
        },
        "ddpm_deploy": __version__,
    }


def write_site(
    out: str | os.PathLike,
    model: Path,
    card: dict,
    ort_dist: Path,
    *,
    force: bool = False,
    webgpu: bool = False,
    name: str | None = None,
) -> dict:
    """Write the page for the sampler file ``model`` (whose card is ``card``) into ``out``, all
    files or none; ``name`` the model it came from."""
    out = Path(out)
    check_out(out, force)
    check_shape(card)
    ort_files = ORT_WASM + (ORT_WEBGPU if webgpu else ())
    names = site_files(webgpu)
    model_name = name or model.name

    def write(folder: Path) -> None:
        (folder / "ort").mkdir()
        for file in ort_files:
            shutil.copyfile(ort_dist / file, folder / "ort" / file)
        copy_model(Path(model), folder / MODEL_FILE, "export-web")  # external data merged in
        config = page_config(folder / MODEL_FILE, model_name, webgpu)
        (folder / "card.json").write_text(json.dumps(card, indent=1, sort_keys=True) + "\n")
        (folder / "config.json").write_text(json.dumps(config) + "\n")
        for file in TEMPLATES:
            shutil.copyfile(template_dir() / file, folder / file)

    # the WebGPU files of an earlier --webgpu export go when this one has none; a linked ort/
    # is replaced, never written through (publish)
    publish(out, names, write, stale=[*site_files(webgpu=True), *OLD_FILES], option="-o")
    size = sum((out / name).stat().st_size for name in names)
    return {
        "out": str(out.resolve()),
        "files": names,
        "bytes": size,
        "model": str(model),
        "sampler": card[GRAPH_KEY],
        "webgpu": webgpu,
    }


def export_web(
    model: str,
    out: str | os.PathLike,
    *,
    force: bool = False,
    node_modules: str | os.PathLike | None = None,
    webgpu: bool = False,
    settings=None,
    guidance: float | None = None,
) -> dict:
    """`ddpm-deploy export-web`: a shipped model name, an exported .onnx file or a sampler file
    (`export-sampler`) -> a static folder. A model's sampler graph is built with ``settings``
    (runtime/sampler_settings.py SamplerSettings; None: the model's own) and ``guidance``."""
    import tempfile

    from ddpm_deploy.onnx_model import read_card
    from ddpm_deploy.shipped import resolve_model

    path = resolve_model(model)
    if not path.is_file():
        raise UserError(f"--model {model}: no such file; pass a shipped model name or a .onnx file")
    card = read_card(path)  # one line when the file has no card or is not a ddpm-deploy model
    check_shape(card)
    check_out(Path(out), force)
    refuse_overwriting_input(out, path)
    dist = find_ort_web(node_modules, webgpu)
    if GRAPH_KEY in card:
        if settings is not None and settings.asked() or guidance is not None:
            raise UserError(f"{path} holds its whole sampler already; drop the sampler options")
        if card[GRAPH_KEY].get("noise") != "seed":
            raise UserError(
                f"{path} takes x_T as input; the page feeds seeds: `export-sampler --noise seed`"
            )
        return write_site(out, path, card, dist, force=force, webgpu=webgpu)
    with tempfile.TemporaryDirectory(prefix="ddpm-deploy-web-") as tmp:
        graph = build_sampler(model, Path(tmp) / MODEL_FILE, settings, guidance)
        record = write_site(
            out, graph, read_card(graph), dist, force=force, webgpu=webgpu, name=path.name
        )
    return record


def build_sampler(model: str, out: Path, settings, guidance: float | None) -> Path:
    """The model's sampler graph at ``out`` (export/sampler_export.py), or one line without onnx."""
    try:
        from ddpm_deploy.export.sampler_export import export_sampler
    except ImportError as e:
        raise UserError(
            f"export-web builds the model's sampler graph with onnx ({e.name} is missing): "
            "pip install 'ddpm-deploy[export]', or pass a file from `ddpm-deploy export-sampler`"
        ) from None
    from ddpm_deploy.runtime.sampler_settings import SamplerSettings

    export_sampler(model, out, settings or SamplerSettings(), guidance, target="web")
    return out
