"""ddpm-deploy: train a small DDPM, export it to ONNX, sample it without torch.

This module stays import-light on purpose: the runtime must never pull in torch
(docs/ARCHITECTURE.md, invariant 2), so nothing heavy is imported here.
"""

__version__ = "0.1.0"
