// gouache page: form -> POST /api/generate/stream (Server-Sent Events) -> live picture -> history.
"use strict";

const $ = (id) => document.getElementById(id);
const HISTORY_KEY = "gouache.history.v1";
const HISTORY_MAX = 30;
const SAMPLER_LABELS = { auto: "Auto (fastest)", consistency: "Few-step student", dpmpp_2m: "DPM++ 2M",
  heun: "Heun", heun_stochastic: "Heun, stochastic", euler: "Euler", ddpm: "DDPM" };

const state = { info: null, controller: null, stepsTouched: false, history: [] };

// ---------- start-up ----------
async function init() {
  bindForm();
  mountHistory();
  loadHistory();
  renderHistory();
  try {
    const resp = await fetch("/api/info");
    if (!resp.ok) throw new Error(resp.statusText);
    state.info = await resp.json();
  } catch (err) {
    setStatus("down", "server unreachable");
    showError("Cannot reach the server: reload the page once it runs.");
    return;
  }
  applyInfo(state.info);
}

function applyInfo(info) {
  const select = $("sampler");
  select.replaceChildren(...info.samplers.map((s) => {
    const opt = document.createElement("option");
    opt.value = s.name;
    opt.textContent = SAMPLER_LABELS[s.name] || s.name;
    opt.dataset.steps = s.default_steps;
    return opt;
  }));
  select.value = info.default_sampler;
  $("steps").value = defaultSteps();
  $("steps").max = info.limits.max_steps;
  $("guidance").max = info.limits.max_guidance;
  $("guidance").value = info.default_guidance;
  updateGuidance();
  $("prompt").maxLength = $("negative_prompt").maxLength = info.limits.max_prompt_chars;
  $("prompt-max").textContent = info.limits.max_prompt_chars;
  $("seed").max = info.limits.max_seed;
  const count = $("num_images");
  count.replaceChildren(...Array.from({ length: info.limits.max_images }, (_, k) => new Option(String(k + 1))));
  applyAdapters(info.adapters || [], info.limits.max_lora_scale);
  startPicture.setSize(info.image_size);
  setStatus("ok", `ready · ${info.image_size}×${info.image_size} model on ${info.device}`);
}

// The adapters the server was started with: chosen by name, never by path; the first is preselected.
function applyAdapters(adapters, maxScale) {
  const select = $("lora");
  select.replaceChildren(new Option("none", ""), ...adapters.map((a) => {
    const opt = new Option(a.name, a.name);
    opt.dataset.scale = a.default_scale;
    return opt;
  }));
  $("lora_scale").max = maxScale;
  $("adapter-row").hidden = adapters.length === 0;
  if (adapters.length) select.value = adapters[0].name;
  adapterChanged();
}

function adapterChanged() {
  const opt = $("lora").selectedOptions[0];
  $("lora_scale").disabled = !opt || !opt.value;
  if (opt && opt.value) $("lora_scale").value = opt.dataset.scale;
}

function defaultSteps() {
  const opt = $("sampler").selectedOptions[0];
  return opt ? Number(opt.dataset.steps) : 20;
}

function bindForm() {
  $("form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (state.controller) { state.controller.abort(); return; }
    const body = collect();
    if (body) generate(body);
  });
  $("prompt").addEventListener("input", () => { $("prompt-count").textContent = $("prompt").value.length; });
  $("prompt").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); $("form").requestSubmit(); }
  });
  $("guidance").addEventListener("input", updateGuidance);
  $("steps").addEventListener("input", () => { state.stepsTouched = true; });
  $("sampler").addEventListener("change", () => { if (!state.stepsTouched) $("steps").value = defaultSteps(); });
  $("lora").addEventListener("change", adapterChanged);
  $("dice").addEventListener("click", () => { $("seed").value = Math.floor(Math.random() * 1e6); });
  startPicture.bind(showError);
}

function updateGuidance() { $("guidance-out").textContent = Number($("guidance").value).toFixed(1); }

// ---------- the request ----------
function collect() {
  showError(null);
  const limits = state.info ? state.info.limits : { max_steps: 200, max_seed: 2147483647 };
  const prompt = $("prompt").value.trim();
  if (!prompt) return invalid("prompt", "Write a prompt first: say what to paint, e.g. “red apple”.");
  const steps = Number($("steps").value);
  if (!Number.isInteger(steps) || steps < 1 || steps > limits.max_steps) {
    return invalid("steps", `Steps must be a whole number from 1 to ${limits.max_steps}.`);
  }
  const body = {
    prompt,
    negative_prompt: $("negative_prompt").value.trim(),
    sampler: $("sampler").value || "auto",
    // auto picks the sampler (the student or DPM++ 2M, by the guidance): its steps too, unless set
    steps: $("sampler").value === "auto" && !state.stepsTouched ? null : steps,
    guidance: Number($("guidance").value),
    num_images: Number($("num_images").value),
  };
  if ($("lora").value) {
    const scale = Number($("lora_scale").value);
    const max = state.info ? state.info.limits.max_lora_scale : 2;
    if ($("lora_scale").value.trim() === "" || !Number.isFinite(scale) || scale < 0 || scale > max) {
      return invalid("lora_scale", `The adapter's scale must be a number from 0 to ${max}.`);
    }
    body.lora = $("lora").value;
    body.lora_scale = scale;
  }
  const seedText = $("seed").value.trim();
  if (seedText !== "") {
    const seed = Number(seedText);
    if (!Number.isInteger(seed) || seed < 0 || seed > limits.max_seed) {
      return invalid("seed", `The seed must be a whole number from 0 to ${limits.max_seed}, or empty for a random one.`);
    }
    body.seed = seed;
  }
  return Object.assign(body, startPicture.fields());
}

// The noise level a start picture is noised to: Karras et al.'s schedule (the deterministic
// samplers'), `strength` of the way from its end; the live view shows the picture going there.
function startSigma(steps, strength) {
  const run = Math.round(steps * strength);
  if (run === 0) return 0;
  const [lo, hi, rho] = [0.002, 80, 7];
  const i = steps - run;
  const t = steps > 1 ? i / (steps - 1) : 0;
  return (hi ** (1 / rho) + t * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho;
}

async function showNoising(body) {
  const top = startSigma(body.steps, body.strength);
  for (const share of [0, 0.05, 0.25, 1]) {
    showImages([startPicture.noised(share * top)], body.prompt);
    $("caption").textContent = `Noising the start picture… sigma ${(share * top).toFixed(2)}`;
    await new Promise((done) => setTimeout(done, 120));
  }
}

function invalid(id, message) {
  showError(message);
  $(id).focus();
  return null;
}

async function generate(body) {
  state.controller = new AbortController();
  setBusy(true);
  setProgress(0);
  $("caption").textContent = "Sending…";
  if (window.matchMedia("(max-width: 820px)").matches) {
    document.querySelector(".stage").scrollIntoView({ behavior: "smooth", block: "nearest" });
  }
  let finished = false;
  try {
    if (body.image) await showNoising(body);
    const resp = await fetch("/api/generate/stream", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify(body),
      signal: state.controller.signal,
    });
    if (!resp.ok) { showError(await errorMessage(resp)); $("caption").textContent = "Nothing painted."; return; }
    await readEvents(resp.body, (event, data) => {
      if (event === "queued") {
        $("caption").textContent = data.position > 1 ? `Waiting in the queue (place ${data.position})…` : "Starting…";
      } else if (event === "progress") {
        showImages(data.images, body.prompt);
        setProgress(data.step / data.total);
        $("caption").textContent = `Painting… step ${data.step} of ${data.total}`;
      } else if (event === "result") {
        finished = true;
        showImages(data.images.map((im) => im.png), data.prompt);
        setProgress(1);
        const seeds = data.images.length > 1 ? `seeds ${data.seed}–${data.seed + data.images.length - 1}` : `seed ${data.seed}`;
        $("caption").textContent = `“${data.prompt}” · ${seeds} · ${data.elapsed_s.toFixed(1)} s`;
        addHistory(data);
      } else if (event === "error") {
        finished = true;
        showError(data.detail || "Painting failed.");
      }
    });
    if (!finished) showError("The connection closed before the picture was finished.");
  } catch (err) {
    if (err.name === "AbortError") { $("caption").textContent = "Stopped."; }
    else { showError("Lost the connection to the server."); }
  } finally {
    state.controller = null;
    setBusy(false);
  }
}

async function errorMessage(resp) {
  let data = {};
  try { data = await resp.json(); } catch (err) { /* not JSON */ }
  if (resp.status === 503) {
    const wait = resp.headers.get("Retry-After");
    return `The server is busy${wait ? `: try again in ${wait} s` : ""}.`;
  }
  if (data.message) return data.message;
  if (typeof data.detail === "string") return data.detail;
  return `The server answered ${resp.status} ${resp.statusText}.`;
}

async function readEvents(stream, onEvent) {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) onEvent(event, JSON.parse(data.join("\n")));
    }
  }
}

// ---------- the live picture ----------
function showImages(pngs, prompt) {
  const canvas = $("canvas");
  $("placeholder").hidden = true;
  canvas.dataset.count = pngs.length;
  let imgs = canvas.querySelectorAll("img");
  if (imgs.length !== pngs.length) {
    imgs.forEach((img) => img.remove());
    for (let k = 0; k < pngs.length; k++) canvas.append(document.createElement("img"));
    imgs = canvas.querySelectorAll("img");
  }
  imgs.forEach((img, k) => {
    img.src = `data:image/png;base64,${pngs[k]}`;
    img.alt = `${prompt} (${k + 1} of ${pngs.length})`;
  });
}

function setProgress(fraction) { $("bar").style.width = `${Math.round(fraction * 100)}%`; }

function setBusy(busy) {
  const button = $("generate");
  button.textContent = busy ? "Stop" : "Generate";
  button.classList.toggle("stop", busy);
  if (state.info) {
    const size = state.info.image_size;
    setStatus(busy ? "busy" : "ok", busy ? "painting…" : `ready · ${size}×${size} model on ${state.info.device}`);
  }
}

function renderHistory() {
  renderCards((entry) => ({
    thumbs: entry.images.map((image) => thumb(entry, image)),
    negative: entry.negative_prompt ? `not: ${entry.negative_prompt}` : "",
    chips: [["sampler", SAMPLER_LABELS[entry.sampler] || entry.sampler], ["steps", entry.steps],
      ["guidance", Number(entry.guidance).toFixed(1)], ["seed", entry.seed],
      ...(entry.strength == null ? [] : [["strength", Number(entry.strength).toFixed(2)]]),
      ...(entry.lora == null ? [] : [["adapter", `${entry.lora} × ${Number(entry.lora_scale).toFixed(2)}`]])],
  }), reuse);
}

function thumb(entry, image) {
  const box = document.createElement("div");
  box.className = "thumb";
  const img = document.createElement("img");
  img.src = `data:image/png;base64,${image.png}`;
  img.alt = `${entry.prompt}, seed ${image.seed}`;
  img.width = img.height = 96;
  const link = document.createElement("a");
  link.href = img.src;
  link.download = `${slug(entry.prompt)}-seed${image.seed}.png`;
  link.textContent = entry.images.length === 1 ? "↓ Download PNG" : `↓ ${image.seed}`;
  link.title = `Download the ${image.width}×${image.height} PNG`;
  box.append(img, link);
  return box;
}

function reuse(entry) {
  $("prompt").value = entry.prompt;
  $("prompt-count").textContent = entry.prompt.length;
  $("negative_prompt").value = entry.negative_prompt || "";
  $("sampler").value = entry.sampler;
  $("steps").value = entry.steps;
  state.stepsTouched = true;
  $("guidance").value = entry.guidance;
  updateGuidance();
  $("seed").value = entry.seed;
  $("num_images").value = String(entry.num_images);
  const known = [...$("lora").options].some((o) => o.value === (entry.lora || ""));
  if (known) {
    $("lora").value = entry.lora || "";
    adapterChanged();
    if (entry.lora) $("lora_scale").value = entry.lora_scale;
  }
  window.scrollTo({ top: 0, behavior: "smooth" });
  $("prompt").focus({ preventScroll: true });
}

function slug(text) {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 60) || "image";
}

document.addEventListener("DOMContentLoaded", init);
