// The page written by `ddpm-deploy export-web`: reads config.json and card.json, loads the ONNX
// model with ONNX Runtime Web (files under ort/, nothing from a CDN) and samples in the browser.
//
// URL parameters: n, seed, class (index, name, "random" or "none"), sampler, steps, guidance,
// ep (wasm | webgpu), threads, xt (a file of n*C*H*W little-endian float32: x_T instead of the
// page's own noise), run=0 (fill the form, do not start). When a run ends, document.title is
// "done" and window.ddpmResult = {images, width, height, channels, seconds, ...}; on bad input it
// is "error", window.ddpmError holds the one message shown, and no images are shown.

import { SAMPLERS, gaussianFromCard, normals, randomClass, roundHalfEven, sample, timestepsFor } from "./samplers.js";

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
  const seed = intParam(get("seed", d.seed), "seed", 0, 4294967295);
  const sampler = get("sampler", d.sampler);
  if (!SAMPLERS.includes(sampler)) fail(`unknown sampler "${sampler}": choose ${SAMPLERS.join(" or ")}`);
  const steps = intParam(get("steps", d.steps), "steps", 1, config.T);
  const guidance = Number(get("guidance", d.guidance));
  if (!Number.isFinite(guidance) || guidance < 0 || String(get("guidance", d.guidance)).trim() === "") {
    fail(`guidance must be a number >= 0 (0: unconditional), got ${get("guidance", d.guidance)}`);
  }
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
  // the card's own timesteps (a distilled model) when its sampler and step count are asked for
  const own = d.timesteps && sampler === d.sampler && steps === d.timesteps.length;
  const timesteps = own ? d.timesteps.slice() : timestepsFor(config.T, steps);
  const labels =
    choice === null
      ? null
      : Array.from({ length: n }, (_, i) => (choice === "random" ? randomClass(seed, i, numClasses()) : choice));
  return { n, seed, sampler, steps, timesteps, guidance, choice, labels, ep, threads,
           clip: own ? d.clip : true, analytic: own ? d.analytic : 0, mix: own ? d.mix : null,
           xt: xtParam(params.get("xt")) };
}

// The test hook x_T: a file name beside the page (same origin, no folders, no scheme, no "//"),
// so a crafted link cannot make the page fetch from another server or choose what it shows.
function xtParam(value) {
  if (value === null) return null;
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$/.test(value)) {
    fail(`xt must be the name of a file beside this page (letters, digits, _ . -), got ${value}`);
  }
  return value;
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
  const response = await fetchOk(config.model, "the model");
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
        const session = await ort.InferenceSession.create(await modelBytes(), { executionProviders: ["webgpu"] });
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

function denoiser({ ort, session }, shape) {
  const [C, H, W] = shape;
  return async (x, t, y, rows) => {
    const feeds = {
      x: new ort.Tensor("float32", x, [rows, C, H, W]),
      t: new ort.Tensor("int64", new BigInt64Array(rows).fill(BigInt(t)), [rows]),
    };
    if (session.inputNames.includes("y")) {
      feeds.y = new ort.Tensor("int64", BigInt64Array.from(y, (v) => BigInt(v)), [rows]);
    }
    const out = await session.run(feeds);
    return out.eps.data;
  };
}

// Model space [-1, 1] -> uint8 by clipping (ddpm_deploy/images.py to_uint8), channels last.
function toPixels(x, index, shape) {
  const [C, H, W] = shape;
  const size = C * H * W;
  const out = new Array(size);
  for (let c = 0; c < C; c++) {
    for (let p = 0; p < H * W; p++) {
      const v = x[index * size + c * H * W + p];
      out[p * C + c] = roundHalfEven((Math.min(1, Math.max(-1, v)) + 1) * 127.5);
    }
  }
  return out;
}

function draw(x, n, shape) {
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
  const image = ctx.createImageData(W, H);
  for (let i = 0; i < n; i++) {
    const px = toPixels(x, i, shape);
    for (let p = 0; p < H * W; p++) {
      const o = p * 4;
      image.data[o] = px[p * C];
      image.data[o + 1] = px[p * C + (C === 3 ? 1 : 0)];
      image.data[o + 2] = px[p * C + (C === 3 ? 2 : 0)];
      image.data[o + 3] = 255;
    }
    ctx.putImageData(image, pad + (i % cols) * (W + pad), pad + Math.floor(i / cols) * (H + pad));
  }
  canvas.hidden = false;
}

async function initialNoise(s, shape) {
  const size = shape[0] * shape[1] * shape[2];
  if (s.xt) {
    const data = new Float32Array(await (await fetchOk(s.xt, "x_T")).arrayBuffer());
    if (data.length !== s.n * size) {
      fail(`x_T ${s.xt} holds ${data.length} values; ${s.n} images of ${shape.join("x")} need ${s.n * size}`);
    }
    return data;
  }
  const x = new Float32Array(s.n * size);
  for (let i = 0; i < s.n; i++) x.set(normals(s.seed, i, size), i * size);
  return x;
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
    const xT = await initialNoise(s, shape);
    const where = `${entry.ep}${entry.ep === "wasm" ? `, ${entry.threads} thread${entry.threads > 1 ? "s" : ""}` : ""}`;
    const t0 = performance.now();
    const x = await sample({
      denoise: denoiser(entry, shape),
      alphaBars: config.alpha_bars,
      xT,
      n: s.n,
      plan: { sampler: s.sampler, timesteps: s.timesteps, clip: s.clip, analytic: s.analytic, mix: s.mix },
      gaussian: s.analytic ? gaussianFromCard(card.gaussian) : null,
      labels: s.labels,
      nullLabel: numClasses() ? numClasses() : null,
      guidance: s.guidance,
      onStep: async (i, t, xi) => {
        draw(xi, s.n, shape);
        $("status").textContent = `Step ${i + 1} of ${s.timesteps.length} (t = ${t}) · ${where}`;
        await new Promise((resolve) => setTimeout(resolve, 0)); // let the browser paint
      },
    });
    const seconds = (performance.now() - t0) / 1000;
    draw(x, s.n, shape);
    const perImage = shape[0] * shape[1] * shape[2];
    const what = s.labels === null ? "" : ` · class ${s.choice === "random" ? "random" : classNames()[s.choice] ?? s.choice}, guidance ${s.guidance}`;
    $("status").textContent =
      `${s.n} image${s.n > 1 ? "s" : ""} in ${seconds.toFixed(2)} s (${(s.n / seconds).toFixed(2)} images/s) · ` +
      `${s.sampler}, ${s.timesteps.length} steps (${s.timesteps.length - s.analytic} network calls)${what} · ${where}`;
    $("download").href = $("grid").toDataURL("image/png");
    $("download").hidden = false;
    window.ddpmResult = {
      images: Array.from({ length: s.n }, (_, i) => toPixels(x, i, shape)),
      width: shape[2],
      height: shape[1],
      channels: shape[0],
      seconds,
      samples: Array.from({ length: s.n }, (_, i) => x.slice(i * perImage, (i + 1) * perImage)),
      labels: s.labels,
      seed: s.seed,
      sampler: s.sampler,
      timesteps: s.timesteps,
      guidance: s.labels === null ? null : s.guidance,
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
  $("guidance-field").hidden = !k;
  const sampler = $("sampler");
  sampler.replaceChildren(...SAMPLERS.map((name) => new Option(name, name)));
  const get = (key, fallback) => (params.has(key) ? params.get(key) : String(fallback));
  const cls = params.get("class");
  if (k && cls !== null && [...select.options].some((o) => o.value === cls.toLowerCase())) select.value = cls.toLowerCase();
  $("n").value = get("n", d.n);
  $("n").max = config.max_n;
  $("seed").value = get("seed", d.seed);
  sampler.value = SAMPLERS.includes(params.get("sampler")) ? params.get("sampler") : d.sampler;
  $("steps").value = get("steps", d.steps);
  $("guidance").value = get("guidance", d.guidance);
}

function formParams() {
  const params = new URLSearchParams(location.search);
  for (const key of ["n", "seed", "sampler", "steps", "guidance"]) params.set(key, $(key).value);
  if (numClasses()) params.set("class", $("class").value);
  params.delete("xt");
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
    `the page's own noise generator: seeds differ from \`ddpm-deploy sample\``;
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
