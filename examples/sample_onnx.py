"""Draw `ddpm-deploy sample`'s images from a sampler file with only onnxruntime, numpy and Pillow.

ddpm-deploy export-sampler -o sampler.onnx      # once, where ddpm-deploy is installed
python sample_onnx.py sampler.onnx 0            # writes samples.png: seed 0, 16 images
"""

import sys

import numpy as np
import onnxruntime as ort
from PIL import Image

path, seed, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0, 16
session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
feeds = {"seed": np.array([seed], np.int64), "index": np.arange(n, dtype=np.int64)}
if "y" in [i.name for i in session.get_inputs()]:
    feeds["y"] = np.full(n, -1, np.int64)  # -1: each image's random class, as `sample` draws it
images = session.run(["image"], feeds)[0]  # uint8 [n, H, W, C]

h, w, c = images.shape[1:]  # samples.png's grid: 2-pixel white borders, ceil(sqrt(n)) columns
cols = int(np.ceil(np.sqrt(n)))
grid = np.full((-(-n // cols) * (h + 2) + 2, cols * (w + 2) + 2, c), 255, np.uint8)
for i, image in enumerate(images):
    top, left = 2 + (i // cols) * (h + 2), 2 + (i % cols) * (w + 2)
    grid[top : top + h, left : left + w] = image
Image.fromarray(grid[..., 0] if c == 1 else grid).save("samples.png")
print(f"wrote samples.png: {n} images of seed {seed} from {path}")
