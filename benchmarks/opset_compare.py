"""GroupNorm as one op: the shipped model re-exported at another opset (21 exports each GroupNorm as
one `GroupNormalization`), timed against the shipped opset-18 file in one alternating run, and
whether ONNX Runtime's fused contrib `com.microsoft.GroupNorm` has a CPU kernel at all.

    python benchmarks/opset_compare.py [--opset 21] [--rounds 3]
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from ddpm_deploy.export import onnx_export

from ddpm_deploy.onnx_model import session_options

ROOT = Path(__file__).resolve().parents[1]


def contrib_groupnorm_on_cpu() -> str:
    """Whether a one-node model of com.microsoft.GroupNorm (SiLU fused) opens on the CPU."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, 8])
    gamma = helper.make_tensor("g", TensorProto.FLOAT, [8], np.ones(8, np.float32))
    beta = helper.make_tensor("b", TensorProto.FLOAT, [8], np.zeros(8, np.float32))
    node = helper.make_node("GroupNorm", ["x", "g", "b"], ["y"], domain="com.microsoft",
                            epsilon=1e-5, groups=2, activation=1)  # fmt: skip
    graph = helper.make_graph([node], "groupnorm", [x], [y], [gamma, beta])
    opsets = [helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)]
    try:
        ort.InferenceSession(helper.make_model(graph, opset_imports=opsets).SerializeToString(),
                             providers=["CPUExecutionProvider"])  # fmt: skip
        return "has a CPU kernel"
    except Exception as e:  # noqa: BLE001 - ORT's own error types
        return str(e).splitlines()[0][:160]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=str(ROOT / "models/fashion_mnist/model.safetensors"))
    p.add_argument("--shipped", default=str(ROOT / "ddpm_deploy/models/fashion_mnist.onnx"))
    p.add_argument("--opset", type=int, default=21)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    out = Path(tempfile.mkdtemp()) / f"opset{args.opset}.onnx"
    onnx_export.OPSET = args.opset  # the exporter's one setting, for this process only
    onnx_export.export_onnx(args.checkpoint, out, verify=True)
    ops = collections.Counter(n.op_type for n in onnx.load(str(out)).graph.node)
    print(f"opset {args.opset} ops: {dict(ops.most_common(6))}")
    files = {"shipped (opset 18)": args.shipped, f"opset {args.opset}": str(out)}
    sessions = {k: ort.InferenceSession(v, session_options(), providers=["CPUExecutionProvider"])
                for k, v in files.items()}  # fmt: skip
    for batch in (16, 100):
        rng = np.random.default_rng(0)
        feed = {"x": rng.standard_normal((batch, 1, 28, 28), dtype=np.float32),
                "t": np.full(batch, 500, np.int64), "y": np.full(batch, 10, np.int64)}  # fmt: skip
        a, b = (s.run(None, feed)[0] for s in sessions.values())
        times: dict[str, list[float]] = {k: [] for k in sessions}
        for _ in range(args.rounds):
            for name, session in sessions.items():
                for _ in range(10):
                    t0 = time.perf_counter()
                    session.run(None, feed)
                    times[name].append(time.perf_counter() - t0)
        for name, v in times.items():
            print(f"batch {batch:>3} {name:<20} {1e3 * np.median(v):7.1f} ms per call (median)")
        print(f"batch {batch:>3} max |eps difference| {float(np.abs(a - b).max()):.2e}")
    print(f"com.microsoft.GroupNorm on the CPU: {contrib_groupnorm_on_cpu()}")


if __name__ == "__main__":
    main()
