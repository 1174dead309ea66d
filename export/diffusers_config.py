"""A local diffusers DDPM folder, read and checked: its layout, its two configs, its schedule.

Two layouts: what ``DDPMPipeline.save_pretrained`` writes (model_index.json, unet/config.json,
unet/diffusion_pytorch_model.safetensors, scheduler/scheduler_config.json) and the flat one some
published DDPM repositories use (config.json, scheduler_config.json and the weights at the root).
Every config the runtime cannot honour is refused in one line that names the field; weights are
read from safetensors only (a .bin file is a pickle and is never opened).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ddpm_deploy.card_checks import (
    SCHEDULER_CONFIG_VALIDATOR,
    UNET_CONFIG_VALIDATOR,
    schema_errors,
)
from ddpm_deploy.errors import UserError
from ddpm_deploy.schedule import Schedule

WEIGHTS = "diffusion_pytorch_model.safetensors"
PICKLED = "diffusion_pytorch_model.bin"
UNETS = ("UNet2DModel", "DdpmDeployUNet")  # DdpmDeployUNet: what `export-diffusers` writes
SCHEDULERS = ("DDPMScheduler", "DDIMScheduler")  # both describe the training betas the same way
# |alpha_bar(ddpm-deploy, float64) - alphas_cumprod(diffusers, float32)|: diffusers computes in
# float32; measured 2.5e-7 (linear, T = 1000) and 3.3e-7 (squaredcos_cap_v2), so 1e-6 is rounding.
ALPHA_BAR_ATOL = 1e-6
# diffusers' variance_type -> the runtime's --variance (the DDPM sampler's sigma_t^2)
VARIANCES = {
    "fixed_small": "posterior",
    "fixed_small_log": "posterior",
    "fixed_large": "beta",
    "fixed_large_log": "beta",
}


INSTALL = "pip install 'ddpm-deploy[diffusers]'"


def require_diffusers() -> None:
    try:
        import diffusers  # noqa: F401
    except ImportError:
        raise UserError(
            f"reading and writing diffusers folders needs diffusers: {INSTALL}"
        ) from None


@dataclass
class DiffusersFolder:
    root: Path
    unet_dir: Path  # holds config.json and the weights
    unet: dict  # unet config.json
    scheduler: dict  # scheduler_config.json with the scheduler class's defaults filled in
    layout: str  # "pipeline" or "flat"

    @property
    def weights(self) -> Path:
        return self.unet_dir / WEIGHTS


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"no {path.name} at {path.parent}; is this a diffusers DDPM folder?")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} holds {type(data).__name__}, not a JSON object")
    return data


def read_folder(folder: str | Path) -> DiffusersFolder:
    """The folder's layout and configs, every field checked; nothing heavy is loaded yet."""
    require_diffusers()
    root = Path(folder)
    if not root.is_dir():
        raise UserError(f"no folder at {root}; pass a local diffusers folder (save_pretrained)")
    if (root / "unet").is_dir():
        index = read_json(root / "model_index.json")
        if index.get("_class_name") not in ("DDPMPipeline", "DDIMPipeline"):
            raise UserError(
                f"{root / 'model_index.json'}: _class_name {index.get('_class_name')!r} is not a "
                "DDPMPipeline or DDIMPipeline (ddpm-deploy imports pixel-space DDPMs)"
            )
        unet_dir, sched, layout = (
            root / "unet",
            root / "scheduler" / "scheduler_config.json",
            "pipeline",
        )
    elif (root / "config.json").is_file():
        unet_dir, sched, layout = root, root / "scheduler_config.json", "flat"
    else:
        raise UserError(
            f"{root} holds neither model_index.json with unet/ and scheduler/ (save_pretrained's "
            "layout) nor config.json with scheduler_config.json (the flat layout)"
        )
    unet = read_json(unet_dir / "config.json")
    check_types(unet, UNET_TYPES, unet_dir / "config.json")
    check_unet(unet, unet_dir / "config.json")
    raw = read_json(sched)
    check_types(raw, SCHEDULER_TYPES, sched)
    check_bounds(raw, SCHEDULER_CONFIG_VALIDATOR, sched)  # before diffusers makes T betas
    scheduler = with_defaults(raw, sched)
    check_scheduler(scheduler, sched)
    found = DiffusersFolder(root, unet_dir, unet, scheduler, layout)
    check_weights(found)
    return found


# The config fields ddpm-deploy reads, with the JSON types each must have (None: may be null).
UNET_TYPES = {"in_channels": (int,), "out_channels": (int,), "layers_per_block": (int,),
              "block_out_channels": (list,), "num_class_embeds": (int, None),
              "norm_num_groups": (int, None), "sample_size": (int, list, None)}  # fmt: skip
SCHEDULER_TYPES = {"num_train_timesteps": (int,), "beta_start": (int, float), "beta_end": (int, float),
                   "beta_schedule": (str,), "clip_sample": (bool,), "prediction_type": (str,)}  # fmt: skip


def check_types(cfg: dict, types: dict, path: Path) -> None:
    """One line for the first field of the wrong JSON type (a string where a number belongs)."""
    for field, allowed in types.items():
        if field not in cfg:
            continue
        value = cfg[field]
        ok = (value is None and None in allowed) or any(
            t is not None and isinstance(value, t) and not (t is int and isinstance(value, bool))
            for t in allowed
        )
        if ok and isinstance(value, float) and not np.isfinite(value):
            ok = False
        if not ok:
            names = " or ".join("null" if t is None else {int: "integer", float: "number", list: "list", str: "string", bool: "true/false"}[t] for t in allowed)  # fmt: skip
            raise UserError(f"{path}: {field} {value!r} must be {names}")


def check_bounds(cfg: dict, validator, path: Path) -> None:
    """A config against its schema (ddpm_deploy/card_schema.py: the sizes of bounds.py, those an
    imported card's arch.unet is held to), so nothing hostile is built or allocated."""
    for problem in schema_errors(cfg, validator):
        raise UserError(
            f"{path}: {problem}, outside what any real model needs; correct the config or "
            "re-save the model with diffusers"
        )


def check_weights(found: DiffusersFolder) -> None:
    if found.weights.is_file():
        return
    if (found.unet_dir / PICKLED).is_file():
        raise UserError(
            f"{found.unet_dir / PICKLED} is a pickle and ddpm-deploy never unpickles: convert it to "
            f"{WEIGHTS} where you trust it (diffusers: save_pretrained(..., safe_serialization=True))"
        )
    raise UserError(f"no {WEIGHTS} in {found.unet_dir}")


def check_unet(cfg: dict, path: Path) -> None:
    name = cfg.get("_class_name")
    if name == "UNet2DConditionModel":
        raise UserError(
            f"{path}: _class_name UNet2DConditionModel is a text- or latent-conditioned UNet; "
            "ddpm-deploy imports pixel-space UNet2DModel DDPMs only"
        )
    if name not in UNETS:
        raise UserError(f"{path}: _class_name {name!r} is not one of {list(UNETS)}")
    if name == "DdpmDeployUNet":
        if not isinstance(cfg.get("card"), dict):
            raise UserError(f"{path}: a DdpmDeployUNet config lacks its model card ('card')")
        return
    fields = {
        "in_channels": cfg.get("in_channels", 3),
        "out_channels": cfg.get("out_channels", 3),
        "time_embedding_type": cfg.get("time_embedding_type", "positional"),
        "class_embed_type": cfg.get("class_embed_type"),
    }
    if fields["out_channels"] != fields["in_channels"]:
        raise UserError(
            f"{path}: out_channels {fields['out_channels']} != in_channels {fields['in_channels']}; "
            "ddpm-deploy runs UNets that predict only the noise (no learned variance)"
        )
    if fields["time_embedding_type"] not in ("positional", "learned"):
        raise UserError(
            f"{path}: time_embedding_type {fields['time_embedding_type']!r} is not supported "
            "(positional or learned; fourier is a score-SDE model, not a DDPM)"
        )
    if fields["class_embed_type"] is not None:
        raise UserError(
            f"{path}: class_embed_type {fields['class_embed_type']!r} is not supported; "
            "ddpm-deploy imports class labels through num_class_embeds only"
        )
    if cfg.get("num_class_embeds") is not None and int(cfg["num_class_embeds"]) < 2:
        raise UserError(f"{path}: num_class_embeds {cfg['num_class_embeds']} (need 2 or more)")
    image_shape(cfg, path)
    check_bounds(cfg, UNET_CONFIG_VALIDATOR, path)


def image_shape(cfg: dict, path: Path | str = "unet config") -> tuple[int, int, int]:
    """(C, H, W) from ``in_channels`` and ``sample_size`` (an int, or [H, W])."""
    size = cfg.get("sample_size")
    hw = [size, size] if isinstance(size, int) else size
    if not (isinstance(hw, list | tuple) and len(hw) == 2 and all(isinstance(v, int) and v > 0 for v in hw)):  # fmt: skip
        raise UserError(f"{path}: sample_size {size!r} is not a positive int or [height, width]")
    return (int(cfg.get("in_channels", 3)), int(hw[0]), int(hw[1]))


def with_defaults(cfg: dict, path: Path) -> dict:
    """The scheduler config with its class's defaults for every field the file leaves out."""
    name = cfg.get("_class_name")
    if name not in SCHEDULERS:
        raise UserError(f"{path}: _class_name {name!r} is not one of {list(SCHEDULERS)}")
    import diffusers

    cls = getattr(diffusers, name)
    defaults = dict(cls.from_config({}).config)
    known = {k: v for k, v in cfg.items() if k in defaults}
    check_scheduler({"_class_name": name, **defaults, **known}, path)  # before diffusers reads it
    try:
        return {"_class_name": name, **dict(cls.from_config(known).config)}
    except (ValueError, TypeError, NotImplementedError) as e:
        raise UserError(f"{path}: diffusers cannot build {name} from it ({str(e)[:200]})") from None


def check_scheduler(cfg: dict, path: Path) -> None:
    """One line naming the first field the runtime cannot honour."""
    refusals = [
        ("prediction_type", cfg.get("prediction_type") != "epsilon",
         "the runtime's networks predict the noise (epsilon); v_prediction and sample are not implemented"),
        ("trained_betas", cfg.get("trained_betas") is not None,
         "explicit betas have no ddpm-deploy schedule; it maps linear and squaredcos_cap_v2"),
        ("beta_schedule", cfg.get("beta_schedule") not in ("linear", "squaredcos_cap_v2"),
         "ddpm-deploy's schedules are linear and cosine (squaredcos_cap_v2); scaled_linear is a latent-diffusion schedule"),
        ("thresholding", bool(cfg.get("thresholding")),
         "dynamic thresholding is not implemented in the runtime's samplers"),
        ("rescale_betas_zero_snr", bool(cfg.get("rescale_betas_zero_snr")),
         "rescaled zero-terminal-SNR betas have no ddpm-deploy schedule"),
        ("variance_type", "variance_type" in cfg and cfg["variance_type"] not in VARIANCES,
         f"the runtime's DDPM sampler has fixed variances only ({sorted(VARIANCES)})"),
        ("clip_sample_range", bool(cfg.get("clip_sample")) and cfg.get("clip_sample_range", 1.0) != 1.0,
         "the runtime clips the predicted x0 to [-1, 1] only"),
    ]  # fmt: skip
    for field, bad, why in refusals:
        if bad:
            raise UserError(f"{path}: {field} {cfg.get(field)!r} cannot be honoured: {why}")


def project_schedule(cfg: dict) -> Schedule:
    """The ddpm-deploy schedule of a checked scheduler config, proven equal to diffusers' own
    ``alphas_cumprod`` value by value."""
    T = int(cfg["num_train_timesteps"])
    if cfg["beta_schedule"] == "linear":
        params = {"beta_start": float(cfg["beta_start"]), "beta_end": float(cfg["beta_end"])}
        schedule = Schedule("linear", T, params)
    else:  # squaredcos_cap_v2: Nichol & Dhariwal's cosine with s = 0.008, betas capped at 0.999
        schedule = Schedule("cosine", T, {"s": 0.008, "max_beta": 0.999})
    check_alpha_bars(schedule, cfg)
    return schedule


def check_alpha_bars(schedule: Schedule, cfg: dict) -> float:
    """max |alpha_bar - alphas_cumprod| over every t; a UserError above ALPHA_BAR_ATOL."""
    from diffusers import DDPMScheduler

    keys = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule")
    theirs = DDPMScheduler(**{k: cfg[k] for k in keys}).alphas_cumprod.double().numpy()
    worst = float(np.abs(theirs - schedule.alpha_bars).max())
    if not worst <= ALPHA_BAR_ATOL:
        raise UserError(
            f"schedule {schedule.to_dict()} differs from diffusers' alphas_cumprod by {worst:.1e} "
            f"(bound {ALPHA_BAR_ATOL:.0e})"
        )
    return worst


def sampler_facts(cfg: dict) -> dict:
    """What the card records of the scheduler: how diffusers sampled this model."""
    clip = "--clip" if cfg.get("clip_sample", True) else "--no-clip"
    if cfg["_class_name"] == "DDIMScheduler":  # eta 0 in DDIMPipeline's default call
        flags = f"--sampler ddim --eta 0 {clip}"
    else:
        flags = f"--sampler ddpm --variance {VARIANCES[cfg['variance_type']]} {clip}"
    return {
        "scheduler": cfg["_class_name"],
        "prediction_type": cfg["prediction_type"],
        "variance_type": cfg.get("variance_type"),
        "clip_sample": bool(cfg.get("clip_sample", True)),
        "timestep_spacing": cfg.get("timestep_spacing"),
        # the runtime's flags for the pipeline's own sampler (its noise differs: runtime/noise.py)
        "runtime_flags": flags,
    }
