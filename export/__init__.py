"""Export side of ddpm-deploy (torch, onnx): ONNX export with parity checks."""
