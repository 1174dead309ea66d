// The page's reverse-diffusion loop, written by `ddpm-deploy export-web`.
//
// A transcription of runtime/samplers.py (DDIM with eta = 0 and DPM-Solver++(2M), both with x0
// clipping; timesteps as `timesteps_for(T, steps, "linspace")`) and runtime/guidance.py
// (classifier-free guidance on a doubled batch). Plain functions of Float32Arrays with no DOM and
// no ONNX Runtime, so node can import this file too (tests/export/test_web.py checks the timesteps
// there).
//
// Noise: the page has its own generator (`normals`), keyed by (seed, image index) like
// runtime/noise.py but NOT numpy's Philox: image i of seed s in the browser is not image i of
// `ddpm-deploy sample --seed s`. Both samplers are deterministic given x_T, so a page fed numpy's
// x_T (`?xt=FILE`) gives the numpy runtime's images; that is how the tests compare them.

export const SAMPLERS = ["dpm++2m", "ddim"];

// numpy's np.round: halves go to the even neighbour.
export function roundHalfEven(v) {
  const r = Math.round(v);
  return Math.abs(v - Math.trunc(v)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// runtime/samplers.py timesteps_for(T, steps, "linspace"): np.linspace(T - 1, 0, steps).round(),
// computed as numpy does (start + i * step, the last value set to the stop exactly).
export function timestepsFor(T, steps) {
  if (!Number.isInteger(steps) || steps < 1 || steps > T) {
    throw new Error(`steps must be an integer between 1 and T=${T}, got ${steps}`);
  }
  const start = T - 1;
  const out = new Array(steps);
  const step = steps > 1 ? (0 - start) / (steps - 1) : 0;
  for (let i = 0; i < steps; i++) out[i] = roundHalfEven(i * step + start);
  if (steps > 1) out[steps - 1] = 0;
  return out;
}

const clip1 = (v) => (v < -1 ? -1 : v > 1 ? 1 : v);

// Ho et al. eq. 15 rearranged, clipped to the data range when `clip`.
export function predictX0(x, eps, ab, clip) {
  const a = Math.fround(ab);
  const s = Math.fround(Math.sqrt(1 - a));
  const r = Math.fround(Math.sqrt(a));
  const out = new Float32Array(x.length);
  for (let k = 0; k < x.length; k++) {
    const v = Math.fround(x[k] - s * eps[k]) / r;
    out[k] = clip ? clip1(v) : v;
  }
  return out;
}

// One DDIM step (eta = 0) x_t -> x_{t_prev}; abPrev = 1 for the last step (t_prev = -1).
// With clipping, eps is recomputed from the clipped x0, as runtime/samplers.py ddim_step does.
export function ddimStep(x, eps, ab, abPrev, clip) {
  const x0 = predictX0(x, eps, ab, clip);
  const sa = Math.fround(Math.sqrt(ab));
  const s1a = Math.fround(Math.sqrt(1 - ab));
  const cx0 = Math.fround(Math.sqrt(abPrev));
  const ceps = Math.fround(Math.sqrt(1 - abPrev));
  const out = new Float32Array(x.length);
  for (let k = 0; k < x.length; k++) {
    const e = clip ? Math.fround(Math.fround(x[k] - sa * x0[k]) / s1a) : eps[k];
    out[k] = cx0 * x0[k] + ceps * e;
  }
  return out;
}

const lambda = (ab) => Math.log(Math.sqrt(ab)) - Math.log(Math.sqrt(1 - ab));

// One DPM-Solver++(2M) step x_t -> x_{t_next} (Lu et al. 2022, Algorithm 2, data prediction);
// x0Last/abLast: the previous step's prediction (null on the first, first-order step);
// abNext = null is the clean end (t_next = -1), where the step lands on x0 itself.
// mix: the step's learned correction (runtime/samplers.py DpmSolver2M), added to 1/(2r); on the
// last step x0 + mix (x0 - x0Last).
export function dpmppStep(x, x0, ab, abNext, x0Last, abLast, mix = 0) {
  if (abNext === null) {
    if (x0Last === null || mix === 0) return Float32Array.from(x0);
    const m = Math.fround(mix);
    return x0.map((v, k) => v + Math.fround(m * Math.fround(v - x0Last[k])));
  }
  const sigma = Math.sqrt(1 - ab);
  const alphaN = Math.sqrt(abNext);
  const sigmaN = Math.sqrt(1 - abNext);
  const lam = lambda(ab);
  const h = lambda(abNext) - lam;
  let c0 = 1;
  let c1 = 0;
  if (x0Last !== null) {
    const r = (lam - lambda(abLast)) / h;
    const k = 1 / (2 * r) + mix;
    c0 = Math.fround(1 + k);
    c1 = Math.fround(k);
  }
  const cx = Math.fround(sigmaN / sigma);
  const cd = Math.fround(alphaN * Math.expm1(-h));
  const out = new Float32Array(x.length);
  for (let k = 0; k < x.length; k++) {
    const d = x0Last === null ? x0[k] : Math.fround(c0 * x0[k]) - Math.fround(c1 * x0Last[k]);
    out[k] = Math.fround(cx * x[k]) - Math.fround(cd * Math.fround(d));
  }
  return out;
}

// The card's Gaussian statistics (runtime/gaussian.py): little-endian base64, the mean and
// variances float32, the principal directions float16; decoded to float64 like the runtime.
function bytesOf(b64) {
  const text = atob(b64);
  const out = new Uint8Array(text.length);
  for (let k = 0; k < text.length; k++) out[k] = text.charCodeAt(k);
  return new DataView(out.buffer);
}

function half(bits) {
  const e = (bits >> 10) & 0x1f;
  const f = bits & 0x3ff;
  const sign = bits & 0x8000 ? -1 : 1;
  if (e === 0) return sign * f * 2 ** -24;
  if (e === 31) return f ? NaN : sign * Infinity;
  return sign * (1 + f / 1024) * 2 ** (e - 15);
}

export function gaussianFromCard(entry) {
  const { groups, rank, dim } = entry;
  const read = (b64, count, f16) => {
    const view = bytesOf(b64);
    if (view.byteLength !== count * (f16 ? 2 : 4)) throw new Error("the card's Gaussian statistics are malformed");
    const out = new Float64Array(count);
    for (let k = 0; k < count; k++) out[k] = f16 ? half(view.getUint16(2 * k, true)) : view.getFloat32(4 * k, true);
    return out;
  };
  return {
    groups, rank, dim,
    mean: read(entry.mean, groups * dim, false),
    vectors: read(entry.vectors, groups * rank * dim, true),
    variances: read(entry.variances, groups * rank, false),
  };
}

// E[x_0 | x_t] under image i's class Gaussian (group groupsOf[i]), clipped: runtime/gaussian.py.
export function gaussianX0(stats, x, ab, groupsOf) {
  const { rank, dim } = stats;
  const n = x.length / dim;
  const a = Math.sqrt(ab);
  const s2 = 1 - ab;
  const out = new Float32Array(x.length);
  const coords = new Float64Array(rank);
  for (let i = 0; i < n; i++) {
    const g = groupsOf[i];
    const mu = g * dim;
    for (let r = 0; r < rank; r++) {
      const v = (g * rank + r) * dim;
      let c = 0;
      for (let d = 0; d < dim; d++) c += stats.vectors[v + d] * (x[i * dim + d] - a * stats.mean[mu + d]);
      const l = stats.variances[g * rank + r];
      coords[r] = (c * a * l) / (a * a * l + s2);
    }
    for (let d = 0; d < dim; d++) {
      let v = stats.mean[mu + d];
      for (let r = 0; r < rank; r++) v += coords[r] * stats.vectors[(g * rank + r) * dim + d];
      out[i * dim + d] = clip1(v);
    }
  }
  return out;
}

// The noise prediction that a data prediction stands for (eq. 15 solved for eps), in float32.
function epsFromX0(x, x0, ab) {
  const sa = Math.fround(Math.sqrt(ab));
  const s1a = Math.fround(Math.sqrt(1 - ab));
  return x.map((v, k) => Math.fround(v - Math.fround(sa * x0[k])) / s1a);
}

// How a batch of n images is sent to the network under guidance w (runtime/guidance.py Guided):
// "none": no labels (an unconditional model, or the null label for every row), one call of n rows;
// "plain": the labels as given, n rows (w = 1; w = 0 is the null label);
// "doubled": (x, x), (t, t), (labels, null) in one call of 2n rows, eps = uncond + w (cond - uncond).
export function guidanceMode(labels, w) {
  if (labels === null || w === 0) return "none";
  return w === 1 ? "plain" : "doubled";
}

export function combineGuided(eps, size, w) {
  const out = new Float32Array(size);
  const fw = Math.fround(w);
  for (let k = 0; k < size; k++) {
    const u = eps[size + k];
    out[k] = u + fw * Math.fround(eps[k] - u);
  }
  return out;
}

// The whole loop. `denoise(x, tValue, yOrNull, rows)` -> Promise<Float32Array> is the network;
// `alphaBars` the schedule's alpha_bar (float64, from config.json); `plan` = {sampler, timesteps,
// clip, analytic, mix} (runtime/sampler_spec.py); `gaussian` the decoded statistics when
// plan.analytic > 0; `onStep(i, t, x)` is awaited after every step (the page draws there).
export async function sample({ denoise, alphaBars, xT, n, plan, labels, nullLabel, guidance, gaussian, onStep }) {
  if (!SAMPLERS.includes(plan.sampler)) throw new Error(`unknown sampler ${plan.sampler}`);
  const size = xT.length;
  const mode = guidanceMode(labels, guidance);
  let y = null;
  let rows = n;
  if (mode === "none" && nullLabel !== null) y = new Array(n).fill(nullLabel);
  if (mode === "plain") y = labels;
  if (mode === "doubled") {
    y = labels.concat(new Array(n).fill(nullLabel));
    rows = 2 * n;
  }
  const ts = plan.timesteps;
  const analytic = plan.analytic || 0;
  if (analytic > 0 && !gaussian) throw new Error("this sampler's analytic steps need the card's Gaussian statistics");
  // each image's statistics: its class, or all images (the null label) when unconditional
  const groupsOf = Array.from({ length: n }, (_, i) => (mode === "plain" || mode === "doubled" ? labels[i] : (nullLabel ?? 0)));
  let x = Float32Array.from(xT);
  let x0Last = null;
  let abLast = null;
  for (let i = 0; i < ts.length; i++) {
    const t = ts[i];
    const tPrev = i + 1 < ts.length ? ts[i + 1] : -1;
    const ab = alphaBars[t];
    let eps;
    if (i < analytic) {
      eps = epsFromX0(x, gaussianX0(gaussian, x, ab, groupsOf), ab);
    } else {
      eps = await denoise(mode === "doubled" ? doubled(x) : x, t, y, rows);
      if (mode === "doubled") eps = combineGuided(eps, size, guidance);
    }
    if (plan.sampler === "ddim") {
      x = ddimStep(x, eps, ab, tPrev >= 0 ? alphaBars[tPrev] : 1.0, plan.clip);
    } else {
      const x0 = predictX0(x, eps, ab, plan.clip);
      const mix = plan.mix ? plan.mix[i] : 0;
      x = dpmppStep(x, x0, ab, tPrev >= 0 ? alphaBars[tPrev] : null, x0Last, abLast, mix);
      x0Last = x0;
      abLast = ab;
    }
    for (let k = 0; k < x.length; k++) {
      if (!Number.isFinite(x[k])) {
        throw new Error(`the sample became NaN/Inf at step ${i + 1} of ${ts.length} (t=${t})`);
      }
    }
    if (onStep) await onStep(i, t, x);
  }
  return x;
}

function doubled(x) {
  const out = new Float32Array(2 * x.length);
  out.set(x, 0);
  out.set(x, x.length);
  return out;
}

// The page's generator: one stream per (seed, image index) (sfc32 seeded through a 32-bit hash),
// normals by Box-Muller. Image i depends only on (seed, i), as in the CLI, but the values differ.
function hash32(a, b, c) {
  let h = 0x9e3779b9 ^ c;
  for (const v of [a >>> 0, b >>> 0]) {
    h = Math.imul(h ^ v, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

export function stream(seed, index, salt = 0) {
  let a = hash32(seed, index, 0x243f6a88 ^ salt);
  let b = hash32(seed, index, 0x85a308d3 ^ salt);
  let c = hash32(seed, index, 0x13198a2e ^ salt);
  let d = 1;
  const next = () => {
    // sfc32 (Chris Doty-Humphrey's small fast counter), 32 bits per call
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let k = 0; k < 12; k++) next();
  return next;
}

// `size` standard normal floats for image `index` of `seed`.
export function normals(seed, index, size) {
  const u = stream(seed, index);
  const out = new Float32Array(size);
  for (let k = 0; k < size; k += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - u()));
    const th = 2 * Math.PI * u();
    out[k] = r * Math.cos(th);
    if (k + 1 < size) out[k + 1] = r * Math.sin(th);
  }
  return out;
}

// A class drawn uniformly from k for image `index` of `seed` (its own stream, not the noise's).
export function randomClass(seed, index, k) {
  return Math.floor(stream(seed, index, 0xc1a55)() * k);
}
