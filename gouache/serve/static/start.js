// Start from a picture: load it at the model's size, paint a mask on it, noise it for the live view.
"use strict";

const startPicture = (() => {
  const $ = (id) => document.getElementById(id);
  let size = 64;  // the model's side, from /api/info
  let picture = null;  // canvas size x size: the picture on white, centre-cropped
  let mask = null;  // canvas size x size: black = keep, white = repaint
  let masked = false;
  let painting = false;

  function blank(fill) {
    const c = document.createElement("canvas");
    c.width = c.height = size;
    const g = c.getContext("2d", { willReadFrequently: true });  // masks and noising read pixels back
    g.fillStyle = fill;
    g.fillRect(0, 0, size, size);
    return c;
  }

  // Like a training image: composited on white, short side scaled to the model's, centre-cropped.
  function fit(img) {
    const c = blank("#fff");
    const scale = size / Math.min(img.width, img.height);
    const w = img.width * scale, h = img.height * scale;
    const g = c.getContext("2d");
    g.imageSmoothingQuality = "high";
    g.drawImage(img, (size - w) / 2, (size - h) / 2, w, h);
    return c;
  }

  function draw() {
    const view = $("start-canvas");
    const g = view.getContext("2d");
    g.imageSmoothingEnabled = false;
    g.clearRect(0, 0, view.width, view.height);
    if (!picture) return;
    g.drawImage(picture, 0, 0, view.width, view.height);
    if (masked) {  // the region to repaint, in translucent blue
      const tint = blank("rgba(0, 0, 0, 0)");
      const t = tint.getContext("2d");
      const m = mask.getContext("2d").getImageData(0, 0, size, size).data;
      const out = t.createImageData(size, size);
      for (let k = 0; k < m.length; k += 4) {
        if (m[k] > 127) out.data.set([47, 102, 144, 170], k);
      }
      t.putImageData(out, 0, 0);
      g.drawImage(tint, 0, 0, view.width, view.height);
    }
  }

  function load(file) {
    if (!file || !file.type.startsWith("image/")) return Promise.reject(new Error("That is not a picture."));
    return createImageBitmap(file).then((img) => {
      picture = fit(img);
      mask = blank("#000");
      masked = false;
      $("start-canvas").hidden = false;
      $("drop-hint").hidden = true;
      $("brush-hint").hidden = false;
      $("start-remove").disabled = false;
      $("mask-clear").disabled = true;
      draw();
    }, () => { throw new Error("Cannot read that picture."); });
  }

  function paintAt(ev) {
    const view = $("start-canvas");
    const box = view.getBoundingClientRect();
    const x = (ev.clientX - box.left) / box.width * size, y = (ev.clientY - box.top) / box.height * size;
    const g = mask.getContext("2d");
    g.fillStyle = "#fff";
    g.beginPath();
    g.arc(x, y, Math.max(2, size / 12), 0, 2 * Math.PI);
    g.fill();
    masked = true;
    $("mask-clear").disabled = false;
    draw();
  }

  function remove() {
    picture = mask = null;
    masked = false;
    $("start-canvas").hidden = true;
    $("drop-hint").hidden = false;
    $("brush-hint").hidden = true;
    $("start-remove").disabled = $("mask-clear").disabled = true;
    $("start-file").value = "";
  }

  function bind(onError) {
    const zone = $("dropzone"), view = $("start-canvas");
    $("start-file").addEventListener("change", (ev) => load(ev.target.files[0]).catch((e) => onError(e.message)));
    zone.addEventListener("dragover", (ev) => { ev.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (ev) => {
      ev.preventDefault();
      zone.classList.remove("over");
      $("start").open = true;
      load(ev.dataTransfer.files[0]).catch((e) => onError(e.message));
    });
    view.addEventListener("pointerdown", (ev) => { painting = true; view.setPointerCapture(ev.pointerId); paintAt(ev); });
    view.addEventListener("pointermove", (ev) => { if (painting) paintAt(ev); });
    view.addEventListener("pointerup", () => { painting = false; });
    $("mask-clear").addEventListener("click", () => {
      mask = blank("#000");
      masked = false;
      $("mask-clear").disabled = true;
      draw();
    });
    $("start-remove").addEventListener("click", remove);
    $("strength").addEventListener("input", () => {
      $("strength-out").textContent = Number($("strength").value).toFixed(2);
    });
  }

  const png = (canvas) => canvas.toDataURL("image/png").split(",")[1];

  // The request's fields, or none when no picture is loaded.
  function fields() {
    if (!picture) return {};
    const out = { image: png(picture), strength: Number($("strength").value) };
    if (masked) out.mask = png(mask);
    return out;
  }

  // The picture noised as the forward process does, x = x0 + sigma n, shown as the
  // variance-preserving x / sqrt(1 + sigma^2) (as the trajectory strip shows it), to sigma.
  function noised(sigma) {
    const c = blank("#fff");
    const g = c.getContext("2d");
    const src = picture.getContext("2d").getImageData(0, 0, size, size);
    const out = g.createImageData(size, size);
    const keep = masked ? mask.getContext("2d").getImageData(0, 0, size, size).data : null;
    const scale = 1 / Math.sqrt(1 + sigma * sigma);
    for (let k = 0; k < src.data.length; k += 4) {
      for (let ch = 0; ch < 3; ch++) {
        const x0 = src.data[k + ch] / 127.5 - 1;
        const gauss = Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
        const x = (keep && keep[k] < 128) ? x0 : (x0 + sigma * gauss) * scale;
        out.data[k + ch] = Math.max(0, Math.min(255, Math.round((x + 1) * 127.5)));
      }
      out.data[k + 3] = 255;
    }
    g.putImageData(out, 0, 0);
    return png(c);
  }

  return {
    setSize(n) { size = n; remove(); },
    bind, fields, noised,
    loaded: () => picture !== null,
  };
})();
