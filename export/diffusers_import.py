"""`import-diffusers`: a local diffusers DDPM folder to a self-describing ddpm-deploy ONNX file.

The UNet is built by diffusers from its config, its safetensors weights are loaded strictly, the
project's exporter writes the graph, and the parity check compares ONNX Runtime with diffusers'
own forward (batch 1, 16, 100; t = 0, T/2, T-1 and random; random class labels). The card comes
from the two configs (export/diffusers_config.py). Nothing is written unless every check passes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from ddpm_deploy.export.diffusers_config import (
    DiffusersFolder,
    image_shape,
    project_schedule,
    read_folder,
    sampler_facts,
)

from ddpm_deploy.card import canonical_dataset, make_card
from ddpm_deploy.errors import UserError
from ddpm_deploy.files import (
    atomic_path,
    check_output,
    onnx_output,
    refuse_overwriting_input,
    writable_dir,
)

IMPORTED = "diffusers"  # the card's dataset when the user does not name a ddpm-deploy dataset


def _load_weights(found: DiffusersFolder, module, prefix: str = "") -> None:
    """Strictly load the folder's safetensors weights (as float32) into ``module``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(found.weights))
    except (SafetensorError, OSError) as e:
        raise UserError(f"{found.weights} is not a readable safetensors file ({e})") from None
    state = {k[len(prefix) :]: v.float() for k, v in tensors.items() if k.startswith(prefix)}
    try:  # the names and shapes were held to the config before it was built (built_to_fit)
        module.load_state_dict(state)
    except RuntimeError as e:
        raise UserError(
            f"{found.weights} does not fit {found.unet_dir / 'config.json'} "
            f"({str(e).splitlines()[-1].strip()[:200]})"
        ) from None
    module.eval()


def built_to_fit(found: DiffusersFolder, build: Callable):
    """``build()`` first on torch's meta device (nothing allocated) and its tensors' shapes held
    to the weights file's header (read without its data); only a config its file fits is built
    for real, so memory stays what the file holds, whatever size the config asks for."""
    import torch
    from safetensors import SafetensorError, safe_open

    config = found.unet_dir / "config.json"
    try:
        with torch.device("meta"):
            needed = {k: list(v.shape) for k, v in build().state_dict().items()}
    except (ValueError, TypeError, KeyError, AttributeError) as e:  # diffusers' own refusals
        raise UserError(f"{config}: diffusers cannot build this UNet ({str(e)[:200]})") from None
    try:
        with safe_open(str(found.weights), "pt") as f:
            held = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError) as e:
        raise UserError(f"{found.weights} is not a readable safetensors file ({e})") from None
    fits = f"{found.weights} does not fit {config}"
    for key, shape in needed.items():
        if key in held and held[key] != shape:
            raise UserError(f"{fits} (size mismatch for {key}: the file holds {held[key]}, the "
                            f"config needs {shape}); use the config saved with these weights")  # fmt: skip
    missing, unexpected = sorted(set(needed) - set(held)), sorted(set(held) - set(needed))
    if missing or unexpected:
        raise UserError(
            f"{fits} ({len(missing)} missing and {len(unexpected)} unexpected tensors, e.g. "
            f"{(missing or unexpected)[0]!r}); use the config saved with these weights"
        )
    return build()


def unet2d_model(found: DiffusersFolder, last_class_is_null: bool):
    """(module x, t[, y] -> eps, diffusers' own forward, card arch) of a UNet2DModel folder."""
    from ddpm_deploy.train.unet2d import ARCH_NAME, Unet2DDenoiser
    from diffusers import UNet2DModel

    cfg = found.unet
    embeds = int(cfg.get("num_class_embeds") or 0)
    if last_class_is_null and not embeds:
        raise UserError("--last-class-is-null: this UNet has no num_class_embeds (unconditional)")
    unet = built_to_fit(found, lambda: UNet2DModel.from_config(cfg))
    _load_weights(found, unet)
    c, h, w = image_shape(cfg)
    arch = {
        "name": ARCH_NAME,
        "unet": cfg,
        "embedding": f"diffusers-{cfg.get('time_embedding_type', 'positional')}",
        "channels": c,
        **({"image_size": h} if h == w else {}),
    }
    if embeds:  # labels 0..K-1; the null label K exists only if the user says the last one is it
        arch.update(num_classes=embeds - 1 if last_class_is_null else embeds)
        arch.update(null_label=last_class_is_null)

    def reference(x, t, *y):
        return unet(x, t, class_labels=y[0] if y else None).sample

    return Unet2DDenoiser(unet, conditional=bool(embeds)), reference, arch


def ddpm_deploy_model(found: DiffusersFolder):
    """The same for a folder `export-diffusers` wrote (its own code is never run: the class is
    ddpm-deploy's); returns the original card too."""
    from ddpm_deploy.train.diffusers_unet import DdpmDeployUNet

    card = checked_card(found.unet["card"], str(found.unet_dir / "config.json"))
    component = built_to_fit(found, lambda: DdpmDeployUNet(card=card))
    _load_weights(found, component)

    def reference(x, t, *y):
        return component(x, t, class_labels=y[0] if y else None).sample

    return component.model, reference, card


def checked_card(card: dict, source: str) -> dict:
    """An embedded card checked by the same code that checks an exported one (card.py, the sampler
    spec and the Gaussian statistics as the runtime reads them)."""
    from ddpm_deploy.runtime.gaussian import GaussianStats
    from ddpm_deploy.runtime.sampler_spec import model_spec

    from ddpm_deploy.card import image_shape as card_shape
    from ddpm_deploy.card import num_classes, validate_card

    how = "re-export it with `ddpm-deploy export-diffusers`"
    validate_card(card, source, how)
    model_spec(card)
    if card.get("gaussian"):
        GaussianStats.from_card(card["gaussian"], num_classes(card), int(np.prod(card_shape(card))))
    return card


def imported_card(found: DiffusersFolder, arch: dict, original: dict | None, dataset: str | None):
    """The model card, from the two configs (and a ddpm-deploy folder's own card)."""
    schedule = project_schedule(found.scheduler)
    k = int(arch.get("num_classes", 0))
    original = original or {}
    name = canonical_dataset(dataset) if dataset else original.get("dataset", IMPORTED)
    if dataset and name == "folder":
        raise UserError(
            "--dataset folder: an imported model records no image folder to measure it against; "
            "pass fashion_mnist or mnist if it was trained on one of those, or leave --dataset out"
        )
    # make_card knows only ddpm-deploy's datasets: an unnamed one is recorded as IMPORTED
    card = make_card(arch=arch, schedule=schedule, dataset=dataset or "mnist", weights="model")
    card.update(
        dataset=name,
        classes=original.get("classes") or [str(i) for i in range(k)],
        training=original.get("training", {}),
    )
    card["image"]["shape"] = list(original.get("image", {}).get("shape") or image_shape(found.unet))
    card.update({key: original[key] for key in ("sampler", "distilled") if key in original})
    card["diffusers"] = {
        "source": str(found.root),
        "layout": found.layout,
        **sampler_facts(found.scheduler),
    }
    if arch.get("null_label") is False:
        card["diffusers"]["guidance"] = "none: the UNet has no null label (no --last-class-is-null)"
    return card


def import_diffusers(
    folder: str | os.PathLike,
    out: str | os.PathLike,
    *,
    checkpoint: str | os.PathLike | None = None,
    dataset: str | None = None,
    last_class_is_null: bool = False,
    echo: Callable = print,
) -> dict:
    """Write ``out`` (.onnx) and, if asked, ``checkpoint`` (.safetensors, for --backend torch) from
    a diffusers folder, after export and parity passed; echoes each parity case; returns the card."""
    inputs = [p for p in Path(folder).rglob("*") if p.is_file()] if Path(folder).is_dir() else []
    out = onnx_output(out, *inputs)
    if checkpoint is not None and Path(checkpoint).suffix != ".safetensors":
        raise UserError(f"--checkpoint {checkpoint}: the file must end in .safetensors")
    if checkpoint is not None:
        check_output(checkpoint)  # a FIFO or a folder there: refused before the export, not after
        refuse_overwriting_input(checkpoint, *inputs, out)
    found = read_folder(folder)
    if found.unet["_class_name"] == "DdpmDeployUNet":
        if last_class_is_null:
            raise UserError(
                "--last-class-is-null: this ddpm-deploy model's card names its null label"
            )
        model, reference, original = ddpm_deploy_model(found)
        card = imported_card(found, original["arch"], original, dataset)
    else:
        model, reference, arch = unet2d_model(found, last_class_is_null)
        card = imported_card(found, arch, None, dataset)
    for path in (out, *([Path(checkpoint)] if checkpoint else [])):
        writable_dir(path.parent)
    with atomic_path(out) as tmp:
        export_checked(model, reference, card, tmp, echo)
        if checkpoint:
            from ddpm_deploy.train.checkpoint import save_checkpoint

            save_checkpoint(checkpoint, card, model.state_dict())
    echo(f"wrote {out}" + (f" and {checkpoint}" if checkpoint else ""))
    return card


def export_checked(model, reference, card: dict, path: Path, echo: Callable) -> None:
    """The project's exporter, then parity of ONNX Runtime against ``reference`` (diffusers' own
    forward) at batch 1, 16, 100; every case echoed, a UserError if any fails."""
    import torch
    from ddpm_deploy.export.onnx_export import metadata, write_checked_onnx
    from ddpm_deploy.export.parity import FP32_ATOL, compare, ort_callable

    # labels drawn in 0..E-1, every class embedding the UNet has (its null label too, if any)
    labels = int(card["arch"].get("num_classes", 0)) - (card["arch"].get("null_label") is False)
    shape, T = tuple(card["image"]["shape"]), card["schedule"]["T"]
    example, inputs = (torch.randn(2, *shape), torch.tensor([0, T - 1])), ["x", "t"]
    if labels:
        example, inputs = (*example, torch.tensor([0, labels])), [*inputs, "y"]
    try:  # a config whose levels do not fit together (sample_size, paddings) fails here
        with torch.inference_mode():
            reference(*example)
    except RuntimeError as e:
        raise UserError(
            f"diffusers' own forward fails on the UNet of {card['diffusers']['source']} at "
            f"{list(shape)} ({str(e).splitlines()[0][:200]}); correct its config.json "
            "(sample_size, block types)"
        ) from None
    write_checked_onnx(model, example, path, inputs, ["eps"], metadata(card))
    cases = compare(
        _numpy(reference), ort_callable(path), T, atol=FP32_ATOL, num_classes=labels, shape=shape
    )
    for case in cases:
        echo(str(case))
    bad = [c for c in cases if not c.ok]
    if bad:
        listed = "; ".join(str(c) for c in bad)
        raise UserError(f"ONNX Runtime disagrees with diffusers in {len(bad)} case(s): {listed}")


def _numpy(reference):
    import torch

    def run(x, t, *y):
        with torch.inference_mode():
            return reference(*(torch.from_numpy(v) for v in (x, t, *y))).numpy()

    return run
