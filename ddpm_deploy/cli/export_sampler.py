"""`export-sampler`: the whole sampler of a model as one ONNX file."""

from __future__ import annotations

import click

from ddpm_deploy.cli.options import friendly_errors
from ddpm_deploy.cli.sampling_options import GRAPH_GUIDANCE, sampler_options


@click.command("export-sampler")
@click.argument("model", default="fashion_mnist")
@click.option("-o", "--out", default="sampler.onnx", help="The .onnx file to write.")
@sampler_options
@GRAPH_GUIDANCE
@click.option(
    "--noise",
    default="seed",
    type=click.Choice(["seed", "input"]),
    help="seed: the graph draws x_T (and any step noise) from inputs seed and index, as `sample` "
    "does; input: it takes x_T as input 'noise' (deterministic samplers only).",
)
@click.option(
    "--target",
    default="ort",
    type=click.Choice(["ort", "tensorrt", "web"]),
    help="ort: ONNX Runtime (any binding) and OpenVINO, equal to `sample` to float32 rounding; "
    "tensorrt: only operators TensorRT 10 imports (no bitwise xor, no float64: slower on a CPU); "
    "web: ONNX Runtime Web, WebGPU included (no float64).",
)
@click.option(
    "--precision",
    default="fp32",
    type=click.Choice(["fp32", "fp16"]),
    help="The denoiser's precision: fp16 for GPUs (norms, softmax and the timestep path kept "
    "fp32; the steps stay fp32). Measured against fp32: x0 within 1.1e-2, 97% of pixels equal.",
)
@friendly_errors
def export_sampler(model, out, guidance, noise, target, precision, **sampler) -> None:
    """Write MODEL's whole sampler (x_T, every step, the images) as one ONNX file.

    Any ONNX Runtime binding, OpenVINO or TensorRT then runs the model's own sampler with no
    Python: inputs seed, index (and y, the class; -1 a random one), outputs x0 and image (uint8).
    The file is checked against `ddpm-deploy sample`'s numpy loop before it is written.
    """
    from ddpm_deploy.export.sampler_export import export_sampler as write
    from ddpm_deploy.runtime.sampler_settings import SamplerSettings

    settings = SamplerSettings(**sampler)
    settings.check(1)
    record = write(model, out, settings, guidance, noise=noise, target=target, precision=precision)
    check, plan = record["check"], record["plan"]
    click.echo(
        f"wrote {record['out']} ({record['bytes'] / 1e6:.2f} MB, the model {record['model_bytes'] / 1e6:.2f} MB; "
        f"{plan['sampler']} at t = {plan['timesteps']}, {plan['analytic']} analytic, guidance "
        f"{plan['guidance']}); against the numpy runtime on {check['images']} images: x0 within "
        f"{check['x0_max_abs']:.1e}, {check['pixels_equal']:.2%} of pixels equal"
        + (fp16_cost(check["against_fp32"]) if "against_fp32" in check else "")
    )


def fp16_cost(cost: dict) -> str:
    return (
        f"; fp16 against the fp32 model: {cost['pixels_equal']:.2%} of pixels equal, none more "
        f"than {cost['max_levels']} grey levels apart"
    )
