// The page written by `ddpm-deploy export-web`: reads config.json and card.json, loads the sampler
// file (the model's whole sampler as one ONNX graph, `ddpm-deploy export-sampler`) with ONNX
// Runtime Web (files under ort/, nothing from a CDN) and runs it: seed and image indices in, uint8
// images out. No sampler here: the graph holds it, so the page draws the images `ddpm-deploy sample
// --seed s` draws.
//
// URL parameters: n, seed, class (index, name, "random" or "none"), ep (wasm | webgpu), threads,
// run=0 (fill the form, do not start). When a run ends, document.title is "done" and
// window.ddpmResult = {images, width, height, channels, seconds, ...}; on bad input it is "error",
// window.ddpmError holds the one message shown, and no images are shown.

const $ = (id) => document.getElementById(id);
let config = null;
let card = null;
let busy = false;
const sessions = new Map(); // "ep/threads" -> {ort, session, ep, threads}

class PageError extends Error {}

function fail(message) {
  throw new PageError(message);
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
  $("grid").hidden = true;
  $("download").hidden = true;
  $("status").textContent = "";
  window.ddpmResult = undefined;
  window.ddpmError = message;
  document.title = "error";
}

function note(message) {
  const el = $("note");
  el.textContent = el.hidden ? message : `${el.textContent} ${message}`;
  el.hidden = false;
}

async function fetchOk(url, what) {
  let response;
  try {
    response = await fetch(url);
  } catch (e) {
    fail(`cannot load ${what} ${url}: ${e.message}`);
  }
  if (!response.ok) {
    fail(`cannot load ${what} ${url}: HTTP ${response.status} ${response.statusText}`.trim());
  }
  return response;
}

const numClasses = () => Number((card.arch || {}).num_classes || 0);
const classNames = () => card.classes || [];

// runtime/guidance.py parse_class, for the page: an index, "random", or null (the null label).
function parseClass(spec) {
  const k = numClasses();
  if (spec === null || spec === "") return k ? "random" : null;
  const s = String(spec).trim().toLowerCase();
  if (s === "none") return null;
  if (!k) fail(`class ${spec}: this ${card.dataset} model is unconditional; leave the class out`);
  if (s === "random") return "random";
  if (/^-?\d+$/.test(s)) {
    const i = Number(s);
    if (i < 0 || i >= k) fail(`class ${spec} is out of range: this model has classes 0..${k - 1}`);
    return i;
  }
  const key = s.replace(/_/g, " ");
  const matches = classNames()
    .map((name, i) => [name.toLowerCase(), i])
    .filter(([name]) => key === name || name.split("/").includes(key));
  if (matches.length !== 1) {
    fail(`unknown class "${spec}": choose a name from ${classNames().join(", ")} or an index 0..${k - 1}`);
  }
  return matches[0][1];
}

// Decimal digits only: Number() would also take "1e1", "0x10", " 7 " and "".
function intParam(value, name, lo, hi) {
  const text = String(value);
  const v = /^[0-9]{1,16}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(v) || v < lo || v > hi) {
    fail(`${name} must be a whole number between ${lo} and ${hi}, got ${value}`);
  }
  return v;
}

// Everything a run needs, checked before the model loads: one message for the first bad value.
function settings(params) {
  const d = config.defaults;
  const get = (key, fallback) => (params.has(key) ? params.get(key) : fallback);
  const n = intParam(get("n", d.n), "n (the number of images)", 1, config.max_n);
  const seed = intParam(get("seed", d.seed), "seed", 0, Number.MAX_SAFE_INTEGER);
  const choice = parseClass(params.has("class") ? params.get("class") : null);
  const ep = get("ep", "wasm");
  if (!["wasm", "webgpu"].includes(ep)) fail(`unknown ep "${ep}": choose wasm or webgpu`);
  const isolated = self.crossOriginIsolated === true;
  const wanted = params.has("threads")
    ? intParam(params.get("threads"), "threads", 1, 64)
    : isolated
      ? Math.max(1, Math.min(4, navigator.hardwareConcurrency || 1))
      : 1;
  const threads = isolated ? wanted : 1;
  if (wanted > 1 && !isolated) {
    note(`${wanted} threads need a cross-origin isolated page (serve the folder with serve.py); running 1 thread.`);
  }
  // the graph's y: a class, -1 (the image's random class, drawn in the graph from (seed, index)
  // as `sample` draws it) or the null label
  const y = choice === "random" ? -1 : choice === null ? numClasses() : choice;
  return { n, seed, choice, y, ep, threads };
}

async function loadOrt(which) {
  const path = config.ort[which];
  try {
    const ort = await import(`./${path}`);
    ort.env.wasm.wasmPaths = new URL("ort/", location.href).href;
    return ort;
  } catch (e) {
    fail(`cannot load ONNX Runtime Web (${path}): ${e.message}; export the folder again with ddpm-deploy export-web`);
  }
}

async function modelBytes() {
  const response = await fetchOk(config.model, "the sampler file");
  return new Uint8Array(await response.arrayBuffer());
}

async function createSession(ep, threads) {
  const key = `${ep}/${threads}`;
  if (sessions.has(key)) return sessions.get(key);
  if (sessions.size) {
    // ONNX Runtime Web fixes its thread count when it first starts: another count needs a reload
    const [first] = sessions.values();
    if (first.threads !== threads) fail("the thread count changes only with a page reload");
  }
  let entry = null;
  if (ep === "webgpu") {
    if (!config.ort.webgpu) {
      note("This export has no WebGPU files (ddpm-deploy export-web --webgpu): running on WebAssembly.");
    } else if (!navigator.gpu || !(await navigator.gpu.requestAdapter().catch(() => null))) {
      note("This browser has no usable WebGPU: running on WebAssembly.");
    } else {
      const ort = await loadOrt("webgpu");
      ort.env.wasm.numThreads = threads;
      try {
        const session = await ort.InferenceSession.create(await modelBytes(), { executionProviders: ["webgpu", "wasm"] });
        entry = { ort, session, ep: "webgpu", threads };
      } catch (e) {
        if (e instanceof PageError) throw e;
        note(`WebGPU failed (${e.message}): running on WebAssembly.`);
      }
    }
  }
  if (entry === null) {
    const ort = await loadOrt("wasm");
    ort.env.wasm.numThreads = threads;
    const bytes = await modelBytes();
    try {
      const session = await ort.InferenceSession.create(bytes, {
        executionProviders: ["wasm"],
        graphOptimizationLevel: "all",
      });
      entry = { ort, session, ep: "wasm", threads };
    } catch (e) {
      fail(`cannot open the model ${config.model}: ${e.message}`);
    }
  }
  sessions.set(key, entry);
  return entry;
}

// One run of the sampler graph: uint8 images [n, H, W, C] and x0 [n, C, H, W].
async function runGraph({ ort, session }, s) {
  const feeds = {
    seed: new ort.Tensor("int64", BigInt64Array.of(BigInt(s.seed)), [1]),
    index: new ort.Tensor("int64", BigInt64Array.from({ length: s.n }, (_, i) => BigInt(i)), [s.n]),
  };
  if (session.inputNames.includes("y")) {
    feeds.y = new ort.Tensor("int64", new BigInt64Array(s.n).fill(BigInt(s.y)), [s.n]);
  }
  const out = await session.run(feeds);
  return { image: out.image.data, x0: out.x0.data };
}

// The grid of samples.png (ddpm_deploy/images.py grid_uint8): 2-pixel white borders.
function draw(image, n, shape) {
  const [C, H, W] = shape;
  const pad = 2;
  const cols = Math.ceil(Math.sqrt(n));
  const rows = Math.ceil(n / cols);
  const canvas = $("grid");
  canvas.width = cols * (W + pad) + pad;
  canvas.height = rows * (H + pad) + pad;
  const scale = Math.max(1, Math.min(8, Math.floor(520 / canvas.width)));
  canvas.style.width = `${canvas.width * scale}px`;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const picture = ctx.createImageData(W, H);
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < H * W; p++) {
      const at = (i * H * W + p) * C;
      picture.data.set([image[at], image[at + (C === 3 ? 1 : 0)], image[at + (C === 3 ? 2 : 0)], 255], p * 4);
    }
    ctx.putImageData(picture, pad + (i % cols) * (W + pad), pad + Math.floor(i / cols) * (H + pad));
  }
  canvas.hidden = false;
}

function describe() {
  const plan = card.sampler_graph;
  const calls = plan.timesteps.length - plan.analytic;
  return `${plan.sampler}, ${plan.timesteps.length} steps (${calls} network calls)`;
}

async function run(params) {
  if (busy) return;
  busy = true;
  $("go").disabled = true;
  $("error").hidden = true;
  $("note").hidden = true;
  $("download").hidden = true;
  window.ddpmResult = undefined;
  window.ddpmError = undefined;
  document.title = "running";
  try {
    const s = settings(params);
    const shape = card.image.shape;
    $("status").textContent = "Loading the model…";
    const entry = await createSession(s.ep, s.threads);
    const where = `${entry.ep}${entry.ep === "wasm" ? `, ${entry.threads} thread${entry.threads > 1 ? "s" : ""}` : ""}`;
    $("status").textContent = `Sampling ${s.n} image${s.n > 1 ? "s" : ""} · ${where}`;
    await new Promise((resolve) => setTimeout(resolve, 0)); // let the browser paint
    const t0 = performance.now();
    const { image, x0 } = await runGraph(entry, s);
    const seconds = (performance.now() - t0) / 1000;
    draw(image, s.n, shape);
    const perImage = shape[0] * shape[1] * shape[2];
    const guidance = card.sampler_graph.guidance;
    const what = numClasses()
      ? ` · class ${s.choice === "random" ? "random" : s.choice === null ? "none" : classNames()[s.choice] ?? s.choice}, guidance ${guidance}`
      : "";
    $("status").textContent =
      `${s.n} image${s.n > 1 ? "s" : ""} in ${seconds.toFixed(2)} s (${(s.n / seconds).toFixed(2)} images/s) · ` +
      `${describe()}${what} · ${where}`;
    $("download").href = $("grid").toDataURL("image/png");
    $("download").hidden = false;
    window.ddpmResult = {
      images: Array.from({ length: s.n }, (_, i) => Array.from(image.subarray(i * perImage, (i + 1) * perImage))),
      width: shape[2],
      height: shape[1],
      channels: shape[0],
      seconds,
      samples: Array.from({ length: s.n }, (_, i) => x0.slice(i * perImage, (i + 1) * perImage)),
      y: s.y,
      seed: s.seed,
      sampler: card.sampler_graph.sampler,
      timesteps: card.sampler_graph.timesteps,
      guidance: numClasses() ? guidance : null,
      ep: entry.ep,
      threads: entry.threads,
    };
    document.title = "done";
  } catch (e) {
    showError(e instanceof PageError ? e.message : `sampling failed: ${e.message || e}`);
  } finally {
    busy = false;
    $("go").disabled = false;
  }
}

function fillForm(params) {
  const d = config.defaults;
  const k = numClasses();
  const select = $("class");
  select.replaceChildren();
  const options = k ? [["random", "random (one per image)"], ...classNames().map((name, i) => [String(i), `${i}: ${name}`]), ["none", "none (unconditional)"]] : [];
  for (const [value, text] of options) select.add(new Option(text, value));
  $("class-field").hidden = !k;
  const get = (key, fallback) => (params.has(key) ? params.get(key) : String(fallback));
  const cls = params.get("class");
  if (k && cls !== null && [...select.options].some((o) => o.value === cls.toLowerCase())) select.value = cls.toLowerCase();
  $("n").value = get("n", d.n);
  $("n").max = config.max_n;
  $("seed").value = get("seed", d.seed);
  $("sampler").textContent = `${describe()}${k ? `, guidance ${card.sampler_graph.guidance}` : ""}`;
}

function formParams() {
  const params = new URLSearchParams(location.search);
  for (const key of ["n", "seed"]) params.set(key, $(key).value);
  if (numClasses()) params.set("class", $("class").value);
  params.delete("run");
  return params;
}

async function main() {
  const params = new URLSearchParams(location.search);
  try {
    config = await (await fetchOk("config.json", "the page's settings")).json();
    card = await (await fetchOk(config.card, "the model card")).json();
  } catch (e) {
    showError(e instanceof PageError ? e.message : `cannot read the page's settings: ${e.message}`);
    return;
  }
  const names = { fashion_mnist: "Fashion-MNIST", mnist: "MNIST" };
  $("heading").textContent = `ddpm-deploy · ${names[card.dataset] || card.dataset}`;
  document.title = "ready";
  $("footer").textContent =
    `${config.model_name} (${card.image.shape.join("x")}, ${numClasses() ? `${numClasses()} classes` : "unconditional"}) · ` +
    `ddpm-deploy ${config.ddpm_deploy} · ONNX Runtime Web ${config.ort.version} · ` +
    `seed s draws the images of \`ddpm-deploy sample --seed s\``;
  fillForm(params);
  $("controls").addEventListener("submit", (event) => {
    event.preventDefault();
    const next = formParams();
    history.replaceState(null, "", `?${next}`);
    run(next);
  });
  if (params.get("run") !== "0") await run(params);
}

main();
