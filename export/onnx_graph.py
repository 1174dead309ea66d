"""Building ONNX graphs in Python: ``GraphBuilder`` (nodes and initializers under unique names, with
onnx.helper) and ``Traced``, a float32 tensor of that graph that the runtime's own numpy step
functions (runtime/steps.py, runtime/solvers.py, runtime/methods.py) run on unchanged, so the
sampler graph (export/sampler_graph.py) is the numpy sampler written down, not a second copy of it.
"""

from __future__ import annotations

import itertools

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class GraphBuilder:
    """Nodes and initializers of one graph. ``op`` adds a node and returns its output name(s);
    ``const`` adds an initializer (one per distinct value name hint) and returns its name."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._ids = itertools.count()

    def fresh(self, hint: str) -> str:
        # the prefix keeps these apart from the names of an inlined denoiser's tensors
        return f"sampler/{hint}_{next(self._ids)}"

    def op(
        self, op_type: str, *inputs: str, outputs: int = 1, out: str | None = None, **attrs
    ) -> str | list[str]:
        """Add a node; its output names are fresh, or ``out`` (a graph output's name)."""
        names = [out] if out else [self.fresh(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, name=names[0], **attrs))
        return names[0] if outputs == 1 else names

    def const(self, value, dtype, hint: str = "const") -> str:
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def i64(self, value, hint: str = "i64") -> str:
        return self.const(value, np.int64, hint)

    def f32(self, value, hint: str = "f32") -> str:
        return self.const(value, np.float32, hint)


class Traced:
    """A float32 tensor in a ``GraphBuilder``'s graph with numpy's arithmetic: +, -, *, /, unary -,
    ``astype`` and ``clip`` (what ``np.clip`` calls) emit nodes; a Python or numpy scalar becomes a
    float32 constant, as numpy's own float32 arithmetic would round it (NEP 50). Setting
    ``__array_ufunc__`` to None makes ``np.float32(c) * traced`` defer to ``__rmul__``."""

    __array_ufunc__ = None
    dtype = np.dtype(np.float32)

    def __init__(self, graph: GraphBuilder, name: str):
        self.graph, self.name = graph, name

    def _other(self, other) -> str:
        if isinstance(other, Traced):
            return other.name
        if np.ndim(other) != 0:
            raise TypeError(f"a traced tensor meets an array of shape {np.shape(other)}")
        return self.graph.f32(np.float32(other), "c")

    def _binary(self, op_type: str, other, reflected: bool = False) -> Traced:
        a, b = self.name, self._other(other)
        return Traced(self.graph, self.graph.op(op_type, *((b, a) if reflected else (a, b))))

    def __add__(self, other):
        return self._binary("Add", other)

    def __radd__(self, other):
        return self._binary("Add", other, True)

    def __sub__(self, other):
        return self._binary("Sub", other)

    def __rsub__(self, other):
        return self._binary("Sub", other, True)

    def __mul__(self, other):
        return self._binary("Mul", other)

    def __rmul__(self, other):
        return self._binary("Mul", other, True)

    def __truediv__(self, other):
        return self._binary("Div", other)

    def __rtruediv__(self, other):
        return self._binary("Div", other, True)

    def __neg__(self):
        return Traced(self.graph, self.graph.op("Neg", self.name))

    def astype(self, dtype, copy: bool = True) -> Traced:
        if np.dtype(dtype) != np.float32:
            raise TypeError(f"the sampler graph is float32; asked for {np.dtype(dtype)}")
        return self

    def clip(self, lo, hi, out=None, **kwargs) -> Traced:
        if out is not None or kwargs:
            raise TypeError("clip(lo, hi) only")
        return Traced(
            self.graph, self.graph.op("Clip", self.name, self._other(lo), self._other(hi))
        )


def value_info(name: str, elem_type: int, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem_type, shape)


FLOAT, DOUBLE, INT64, UINT8 = (
    TensorProto.FLOAT,
    TensorProto.DOUBLE,
    TensorProto.INT64,
    TensorProto.UINT8,
)
