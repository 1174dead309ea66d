"""What `quantize --setting NAME` quantizes, how it calibrates, and which layers stay in float.

The settings are the ones measured in docs/QUALITY.md ("int8: the end-to-end gate"), after the
diffusion quantization papers: Q-Diffusion (Li et al. 2023: calibrate on the inputs the sampler
really feeds, timestep by timestep, and treat the skip-connection concatenations apart, whose two
halves have different ranges) and PTQ4DM (Shang et al. 2023: calibration from the denoising
process). Groups of layers kept in float:

- ``ends``: the first convolution (it sees x_t) and the last (it writes eps);
- ``skips``: the convolutions fed directly by a skip-connection Concat (one activation scale
  would serve two differently ranged halves);
- ``full-res``: every convolution at the image's full resolution, the layers that carry fine
  detail: only the coarser levels are int8.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ddpm_deploy.errors import UserError

KEEP_GROUPS = ("ends", "skips", "full-res")


@dataclass(frozen=True)
class QuantSettings:
    ops: tuple[str, ...] = ("Conv",)  # op types quantized (ORT's op_types_to_quantize)
    keep_float: tuple[str, ...] = ("ends",)  # groups of KEEP_GROUPS left in float
    calibration: str = "forward"  # forward: q(x_t | x_0) on training images, t uniform;
    # sampler: the x_t the fp32 model meets in the default sampler, an equal share per timestep
    method: str = "minmax"  # minmax or percentile (99.999%)
    activations: str = "s8"  # s8: int8, symmetric; u8: uint8, asymmetric (ORT's x86 fast path)

    def describe(self) -> dict:
        return asdict(self)


SETTINGS = {
    "convs": QuantSettings(),  # the quantizer before the end-to-end gate
    "convs-u8": QuantSettings(activations="u8"),
    "convs-sampler": QuantSettings(calibration="sampler"),
    "convs-sampler-skips": QuantSettings(calibration="sampler", keep_float=("ends", "skips")),
    "convs-sampler-pct": QuantSettings(calibration="sampler", method="percentile"),
    "coarse": QuantSettings(calibration="sampler", keep_float=("ends", "skips", "full-res")),
    "convs-matmul": QuantSettings(ops=("Conv", "MatMul"), calibration="sampler"),
}
DEFAULT_SETTING = "coarse"  # the best gate readings measured, and faster (docs/QUALITY.md)


def settings_for(name: str) -> QuantSettings:
    if name not in SETTINGS:
        raise UserError(f"unknown --setting {name!r}; choose from {', '.join(SETTINGS)}")
    return SETTINGS[name]


def _ends(model) -> list[str]:
    """The first conv (fed by x) and the last (nearest to eps, walking back from the output)."""
    producers = {o: n for n in model.graph.node for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    first = [n.name for n in convs if "x" in n.input]
    frontier = [o.name for o in model.graph.output]
    while frontier:
        node = producers.get(frontier.pop(0))
        if node is not None and node.op_type == "Conv":
            return first + [node.name]
        if node is not None:
            frontier.extend(node.input)
    return first


def _skips(model) -> list[str]:
    producers = {o: n for n in model.graph.node for o in n.output}
    return [
        n.name
        for n in model.graph.node
        if n.op_type == "Conv" and getattr(producers.get(n.input[0]), "op_type", "") == "Concat"
    ]


def _full_res(model) -> list[str]:
    """Convolutions whose output has the input image's height (ONNX shape inference)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    dims = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output)
    }
    height = dims["x"][2]
    return [
        n.name
        for n in model.graph.node
        if n.op_type == "Conv"
        and len(dims.get(n.output[0], [])) == 4
        and dims[n.output[0]][2] == height
    ]


def excluded_nodes(model, settings: QuantSettings) -> list[str]:
    """Names of the nodes ``settings`` keeps in float."""
    finders = {"ends": _ends, "skips": _skips, "full-res": _full_res}
    names: list[str] = []
    for group in settings.keep_float:
        names += [n for n in finders[group](model) if n not in names]
    return names


def static_kwargs(model, settings: QuantSettings) -> dict:
    """Keyword arguments of onnxruntime.quantization.quantize_static for ``settings``."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    symmetric = settings.activations == "s8"
    extra = {"ActivationSymmetric": symmetric, "WeightSymmetric": True}
    if settings.method == "percentile":
        extra.update({"CalibPercentile": 99.999, "CalibTensorRangeSymmetric": symmetric})
    return {
        "quant_format": QuantFormat.QDQ,
        "op_types_to_quantize": list(settings.ops),
        "per_channel": True,
        "activation_type": QuantType.QInt8 if symmetric else QuantType.QUInt8,
        "weight_type": QuantType.QInt8,
        "nodes_to_exclude": excluded_nodes(model, settings),
        "calibrate_method": {
            "minmax": CalibrationMethod.MinMax,
            "percentile": CalibrationMethod.Percentile,
        }[settings.method],
        "extra_options": extra,
    }
