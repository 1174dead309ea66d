// Draw `ddpm-deploy sample`'s images from a sampler file with only onnxruntime-node and pngjs.
//   ddpm-deploy export-sampler -o sampler.onnx            # once, where ddpm-deploy is installed
//   npm ci --prefix examples/node
//   node examples/node/sample.mjs sampler.onnx 0          # writes samples.png: seed 0, 16 images
import { writeFileSync } from "node:fs";
import ort from "onnxruntime-node";
import pngjs from "pngjs";

const [path, seed = "0"] = process.argv.slice(2), n = 16;
const session = await ort.InferenceSession.create(path, { executionProviders: ["cpu"] });
const int64 = (v) => new ort.Tensor("int64", BigInt64Array.from(v, BigInt), [v.length]);
const feeds = { seed: int64([seed]), index: int64([...Array(n).keys()]) };
if (session.inputNames.includes("y")) feeds.y = int64(Array(n).fill(-1)); // -1: random class
const { image } = await session.run(feeds, ["image"]); // uint8 [n, H, W, C]

const [, h, w, c] = image.dims; // samples.png's grid: 2-pixel white borders, ceil(sqrt(n)) columns
const cols = Math.ceil(Math.sqrt(n)), width = cols * (w + 2) + 2;
const height = Math.ceil(n / cols) * (h + 2) + 2, grid = Buffer.alloc(width * height * c, 255);
for (let i = 0; i < n; i++) {
  const top = 2 + Math.floor(i / cols) * (h + 2), left = 2 + (i % cols) * (w + 2);
  for (let row = 0; row < h; row++) {
    const from = (i * h + row) * w * c;
    grid.set(image.data.subarray(from, from + w * c), ((top + row) * width + left) * c);
  }
}
const type = c === 1 ? 0 : 2; // 8-bit grey or RGB, as samples.png
const options = { colorType: type, inputColorType: type, inputHasAlpha: false };
writeFileSync("samples.png", pngjs.PNG.sync.write({ width, height, data: grid }, options));
console.log(`wrote samples.png: ${n} images of seed ${seed} from ${path}`);
