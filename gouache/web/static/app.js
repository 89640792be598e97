// gouache in the browser: prompt -> tokenizer.js -> text.onnx -> the consistency sampler (sampler.js)
// calling student.onnx once a step -> live picture -> history. Nothing leaves the page.
"use strict";

const $ = (id) => document.getElementById(id);
const HISTORY_KEY = "gouache.web.history.v1";
const HISTORY_MAX = 30;
const MAX_SEED = 2147483647;

const state = { model: null, tokenizer: null, ort: null, text: null, student: null, backend: "", busy: false,
  stop: false, prompts: new Map(), history: [] };

// ---------- start-up ----------
async function init() {
  bindForm();
  mountHistory();
  loadHistory();
  renderHistory();
  try {
    await keepOffline();
    const model = state.model = await (await fetch("model.json")).json();
    const vocab = await (await fetch("vocab.txt")).text();
    state.tokenizer = GouacheTokenizer.WordPieceTokenizer.fromText(vocab, { maxLength: model.text_max_length,
      unk: model.tokenizer.unk, prefix: model.tokenizer.prefix, maxWordChars: model.tokenizer.max_word_chars,
      special: model.tokenizer.special });
    setStatus("busy", "loading the networks…");
    const ort = state.ort = await loadRuntime();
    // the prompt encoder runs once a prompt: WebAssembly; the student on WebGPU where there is one
    state.text = await ort.InferenceSession.create("text.onnx", { executionProviders: ["wasm"] });
    const providers = state.backend === "webgpu" ? ["webgpu", "wasm"] : ["wasm"];
    state.student = await ort.InferenceSession.create("student.onnx", { executionProviders: providers });
  } catch (err) {
    console.error(err);
    setStatus("down", "could not load");
    showError(`The page could not load its networks: ${err.message || err}`);
    return;
  }
  $("steps").value = String(state.model.default_steps);
  $("about").textContent = `The few-step student of ${state.model.name} paints at guidance `
    + `${state.model.guidance.toFixed(1)}, distilled into it.`;
  $("generate").disabled = false;
  setStatus("ok", readyText());
  document.body.dataset.ready = "";
}

function readyText() {
  const size = state.model.image_size;
  return `ready · ${size}×${size} model in this browser (${state.backend === "webgpu" ? "WebGPU" : "WebAssembly"})`;
}

// A service worker keeps every file the page fetched: once loaded, it works offline.
async function keepOffline() {
  if (!("serviceWorker" in navigator) || !window.isSecureContext) return;
  try {
    await navigator.serviceWorker.register("sw.js");
    if (!navigator.serviceWorker.controller) {  // the first visit: let it take the page before the big files
      await Promise.race([new Promise((done) => navigator.serviceWorker.addEventListener("controllerchange", done)),
        new Promise((done) => setTimeout(done, 3000))]);
    }
  } catch (err) { console.warn("no offline copy:", err); }
}

// onnxruntime-web: WebGPU where the browser has an adapter and JavaScript Promise Integration
// (the smaller of the WebGPU builds), else WebAssembly; ?backend=wasm or ?backend=webgpu decides
// instead (webgpu without an adapter: the WebGPU build on its WebAssembly backend). Threads only
// where the page is cross-origin isolated.
async function loadRuntime() {
  const asked = new URLSearchParams(location.search).get("backend");
  let gpu = asked === "webgpu";
  if (!asked && navigator.gpu && typeof WebAssembly.Suspending === "function") {
    try { gpu = Boolean(await navigator.gpu.requestAdapter()); } catch (err) { gpu = false; }
  }
  state.backend = gpu ? "webgpu" : "wasm";
  await new Promise((done, fail) => {
    const script = document.createElement("script");
    script.src = gpu ? "ort/ort.jspi.min.js" : "ort/ort.wasm.min.js";
    script.onload = done;
    script.onerror = () => fail(new Error(`cannot load ${script.src}`));
    document.head.append(script);
  });
  const ort = window.ort;
  ort.env.wasm.wasmPaths = new URL("ort/", location.href).href;
  ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
  return ort;
}

function bindForm() {
  $("form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (state.busy) { state.stop = true; return; }
    const settings = collect();
    if (settings) paint(settings);
  });
  $("prompt").addEventListener("input", () => { $("prompt-count").textContent = $("prompt").value.length; });
  $("prompt").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); $("form").requestSubmit(); }
  });
  $("dice").addEventListener("click", () => { $("seed").value = Math.floor(Math.random() * 1e6); });
}

function collect() {
  showError(null);
  const prompt = $("prompt").value.trim();
  if (!prompt) return invalid("prompt", "Write a prompt first: say what to paint, e.g. “red apple”.");
  const steps = Number($("steps").value);
  const seedText = $("seed").value.trim();
  let seed = Math.floor(Math.random() * (MAX_SEED + 1));
  if (seedText !== "") {
    seed = Number(seedText);
    if (!Number.isInteger(seed) || seed < 0 || seed > MAX_SEED) {
      return invalid("seed", `The seed must be a whole number from 0 to ${MAX_SEED}, or empty for a random one.`);
    }
  }
  return { prompt, seed, steps };
}

function invalid(id, message) {
  showError(message);
  $(id).focus();
  return null;
}

// ---------- painting ----------
// The prompt's token states, mask and pooled embedding (PromptEmbedding), each prompt once.
async function encode(prompt) {
  if (state.prompts.has(prompt)) return state.prompts.get(prompt);
  const ort = state.ort;
  const ids = state.tokenizer.encode(prompt);
  const n = ids.length;
  const out = await state.text.run({
    ids: new ort.Tensor("int64", BigInt64Array.from(ids, BigInt), [1, n]),
    mask: new ort.Tensor("int64", new BigInt64Array(n).fill(1n), [1, n]),
  });
  const cond = { tokens: out.tokens, pooled: out.pooled, mask: new ort.Tensor("bool", new Uint8Array(n).fill(1), [1, n]) };
  state.prompts.set(prompt, cond);
  return cond;
}

async function paint({ prompt, seed, steps }) {
  const { image_size: size, channels, sigma_max: sigmaMax, sigma_last: sigmaLast } = state.model;
  const ort = state.ort;
  state.busy = true;
  state.stop = false;
  setBusy(true);
  setProgress(0);
  $("caption").textContent = "Reading the prompt…";
  const started = performance.now();
  try {
    const cond = await encode(prompt);
    const shape = [1, channels, size, size];
    const model = async (x, sigma) => {
      if (state.stop) throw new Error("stopped");
      const out = await state.student.run({ x: new ort.Tensor("float32", x, shape),
        sigma: new ort.Tensor("float32", Float32Array.of(sigma), [1]), ...cond });
      return out.denoised.data;
    };
    const sigmas = GouacheSampler.consistencySigmas(steps, sigmaMax, sigmaLast);
    const x = await GouacheSampler.sampleConsistency(model, seed, shape, sigmas, async (i, total, denoised) => {
      showPicture(toPng(denoised, size), prompt);
      setProgress((i + 1) / total);
      $("caption").textContent = `Painting… step ${i + 1} of ${total}`;
      await new Promise((done) => requestAnimationFrame(() => done()));  // let the step show
    });
    const png = toPng(x, size);
    showPicture(png, prompt);
    const elapsed = (performance.now() - started) / 1000;
    $("caption").textContent = `“${prompt}” · seed ${seed} · ${elapsed.toFixed(1)} s`;
    addHistory({ prompt, seed, steps, png, elapsed_s: elapsed, backend: state.backend });
  } catch (err) {
    if (state.stop) { $("caption").textContent = "Stopped."; }
    else { console.error(err); showError(`Painting failed: ${err.message || err}`); }
  } finally {
    state.busy = false;
    setBusy(false);
  }
}

// (1, 3, H, W) in [-1, 1] -> PNG data URL, rounded as gouache.images.to_uint8 (half to even)
function toPng(x, size) {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = size;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(size, size);
  const plane = size * size;
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) img.data[4 * p + c] = toByte(x[c * plane + p]);
    img.data[4 * p + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  return canvas.toDataURL("image/png");
}

function toByte(v) {
  const t = Math.fround(Math.fround(Math.min(1, Math.max(-1, v)) + 1) * 127.5);
  const r = Math.round(t);
  return r - t === 0.5 && r % 2 ? r - 1 : r;  // a tie goes to the even neighbour
}

function showPicture(png, prompt) {
  $("placeholder").hidden = true;
  let img = $("canvas").querySelector("img");
  if (!img) { img = document.createElement("img"); $("canvas").append(img); }
  img.src = png;
  img.alt = prompt;
}

function setProgress(fraction) { $("bar").style.width = `${Math.round(fraction * 100)}%`; }

function setBusy(busy) {
  const button = $("generate");
  button.textContent = busy ? "Stop" : "Generate";
  button.classList.toggle("stop", busy);
  if (state.model) setStatus(busy ? "busy" : "ok", busy ? "painting…" : readyText());
}

function renderHistory() {
  renderCards((entry) => ({
    thumbs: [thumb(entry)],
    chips: [["steps", entry.steps], ["seed", entry.seed], ["time", `${entry.elapsed_s.toFixed(1)} s`]],
  }), reuse);
}

function thumb(entry) {
  const box = document.createElement("div");
  box.className = "thumb";
  const img = document.createElement("img");
  img.src = entry.png;
  img.alt = `${entry.prompt}, seed ${entry.seed}`;
  img.width = img.height = 96;
  const link = document.createElement("a");
  link.href = entry.png;
  link.download = `${slug(entry.prompt)}-seed${entry.seed}.png`;
  link.textContent = "↓ Download PNG";
  box.append(img, link);
  return box;
}

function reuse(entry) {
  $("prompt").value = entry.prompt;
  $("prompt-count").textContent = entry.prompt.length;
  $("steps").value = String(entry.steps);
  $("seed").value = entry.seed;
  window.scrollTo({ top: 0, behavior: "smooth" });
  $("prompt").focus({ preventScroll: true });
}

function slug(text) {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 60) || "image";
}

document.addEventListener("DOMContentLoaded", init);
