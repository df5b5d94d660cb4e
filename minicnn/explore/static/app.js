/* minicnn explore: plain JavaScript, no build step, no external assets.
   Live mode talks to the server's JSON API; an exported page carries its data in
   window.EXPLORE_DATA and makes no request at all. */
"use strict";

const STATIC = window.EXPLORE_DATA || null;
const state = {
  model: null, fwd: null, bwd: null, input: null, index: null, label: null,
  view: "forward", selected: null, inflight: false, dirty: false, roundTrips: [], cmp: null, step: null,
};
window.explore = { state };

const $ = (id) => document.getElementById(id);

const decoded = new WeakMap();
function decode(p) {
  if (decoded.has(p)) return decoded.get(p);
  const bin = atob(p.b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  const arr = p.dtype === "float64" ? new Float64Array(bytes.buffer) : new Float32Array(bytes.buffer);
  const out = { shape: p.shape, data: arr };
  decoded.set(p, out);
  return out;
}

function fmt(v, d = 4) {
  if (v === null || v === undefined) return "-";
  if (typeof v !== "number") return String(v);
  if (!isFinite(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e4) ? v.toExponential(d - 1) : v.toFixed(d);
}
const pct = (v) => (v === null || v === undefined ? "-" : (100 * v).toFixed(1) + "%");

function setStatus(text, error = false) {
  const s = $("status");
  s.textContent = text;
  s.className = error ? "error" : "";
}

async function api(path, body, contentType = "application/json") {
  const opts = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": contentType },
    body: contentType === "application/json" ? JSON.stringify(body) : body,
  };
  const r = await fetch(path, opts);
  const j = await r.json();
  if (!r.ok) throw new Error(j.error || ("HTTP " + r.status));
  return j;
}

function inputSpec() {
  return state.index !== null ? { index: state.index } : { pixels: state.input };
}

function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  if (text !== undefined) e.textContent = text;
  return e;
}

// ------------------------------------------------------------------ colours
function paint(canvas, w, h, values, offset, stride, lo, hi, diverging) {
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  const span = hi - lo || 1;
  const m = Math.max(Math.abs(lo), Math.abs(hi)) || 1;
  for (let i = 0; i < w * h; i++) {
    const v = values[offset + i * stride];
    let r, g, b;
    if (diverging) {
      const t = Math.max(-1, Math.min(1, v / m));
      if (t >= 0) { r = 255; g = b = Math.round(255 * (1 - t)); } else { b = 255; r = g = Math.round(255 * (1 + t)); }
    } else {
      r = g = b = Math.round(255 * Math.max(0, Math.min(1, (v - lo) / span)));
    }
    img.data[4 * i] = r; img.data[4 * i + 1] = g; img.data[4 * i + 2] = b; img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

function range(data) {
  let lo = Infinity, hi = -Infinity;
  for (const v of data) { if (v < lo) lo = v; if (v > hi) hi = v; }
  return [lo, hi];
}

// ------------------------------------------------------------------ layer maps
function layerBox(i) {
  let box = document.querySelector(`.layer[data-layer="${i}"]`);
  if (box) return box;
  box = el("div", { class: "layer", "data-layer": i });
  box.appendChild(el("div", { class: "head" }));
  box.appendChild(el("div", { class: "maps" }));
  $("layers").appendChild(box);
  return box;
}

function drawTensor(i, arr, diverging) {
  const box = layerBox(i);
  const maps = box.querySelector(".maps");
  const shape = arr.shape;
  const [lo, hi] = range(arr.data);
  if (shape.length === 3) {
    const [h, w, c] = shape;
    const scale = Math.max(1, Math.min(4, Math.floor(56 / Math.max(h, w))));
    if (maps.childElementCount !== c) {
      maps.textContent = "";
      for (let ch = 0; ch < c; ch++) {
        const cv = el("canvas", { width: w, height: h, "data-layer": i, "data-ch": ch, title: `channel ${ch}` });
        cv.style.width = w * scale + "px"; cv.style.height = h * scale + "px";
        const at = (e) => [Math.min(h - 1, Math.floor(e.offsetY / cv.clientHeight * h)),
          Math.min(w - 1, Math.floor(e.offsetX / cv.clientWidth * w))];
        cv.addEventListener("click", (e) => { const [r, col] = at(e); selectUnit(i, [r, col, ch]); });
        cv.addEventListener("mousemove", (e) => { const [r, col] = at(e); cv.title = hoverText(i, (r * w + col) * c + ch, `[${r}, ${col}, ${ch}]`); });
        maps.appendChild(cv);
      }
    }
    for (let ch = 0; ch < c; ch++) paint(maps.children[ch], w, h, arr.data, ch, c, lo, hi, diverging);
  } else {
    const n = shape[0];
    const w = Math.min(n, 128), h = Math.ceil(n / 128);
    let cv = maps.firstElementChild;
    if (!cv || cv.tagName !== "CANVAS" || +cv.width !== w || +cv.height !== h || maps.childElementCount !== 1) {
      maps.textContent = "";
      cv = el("canvas", { width: w, height: h, class: "strip" + (h > 1 ? " tall" : ""), "data-layer": i });
      if (h > 1) { cv.style.width = Math.min(w * 3, 384) + "px"; cv.style.height = h * 3 + "px"; }
      else cv.style.width = Math.min(w * 6, 512) + "px";
      const at = (e) => Math.min(n - 1, Math.min(h - 1, Math.floor(e.offsetY / cv.clientHeight * h)) * w +
        Math.min(w - 1, Math.floor(e.offsetX / cv.clientWidth * w)));
      cv.addEventListener("click", (e) => selectUnit(i, [at(e)]));
      cv.addEventListener("mousemove", (e) => { const k = at(e); cv.title = hoverText(i, k, `[${k}]`); });
      maps.appendChild(cv);
    }
    const padded = new Float64Array(w * h);
    padded.set(arr.data);
    paint(cv, w, h, padded, 0, 1, Math.min(lo, 0), hi, diverging);
  }
}

// the value under the pointer, and Keras's beside it when the comparison is on
function hoverText(i, flat, where) {
  const back = state.view === "backward" && state.bwd;
  const mine = back ? state.bwd.layers[i].grad_logits || state.bwd.layers[i].grad : state.fwd.layers[i].output;
  if (!mine) return where;
  let t = `${where} minicnn ${decode(mine).data[flat]}`;
  const c = state.cmp && state.cmp.layers[i];
  const theirs = c && (back ? (state.bwd.layers[i].grad_logits ? null : c.grad) : c.output);
  if (theirs) t += ` · TensorFlow ${decode(theirs).data[flat]}`;
  return t;
}

async function runCompare() {
  if (STATIC || !$("tf-compare").checked || !state.fwd) { state.cmp = null; renderCompare(); return; }
  const sel = $("target").value;
  const target = state.view === "backward" && state.bwd ? state.bwd.target :
    (sel === "label" ? (state.label ?? state.fwd.predicted) : +sel);
  setStatus("comparing with TensorFlow…");
  state.cmp = await api("/api/compare", { ...inputSpec(), target });
  renderCompare();
  setStatus(`TensorFlow ${state.cmp.tensorflow}: max|d| of dL/d(input) ${fmt(state.cmp.input_grad_max_abs_diff, 2)}`);
}

function renderCompare() {
  document.querySelectorAll(".tfnote").forEach((n) => n.remove());
  if (!state.cmp) return;
  state.cmp.layers.forEach((c, i) => {
    const box = layerBox(i);
    const note = el("div", { class: "head tfnote", "data-output-diff": c.output_max_abs_diff },
      `beside TensorFlow: output max|d| ${fmt(c.output_max_abs_diff, 2)}` +
      (c.grad_max_abs_diff !== undefined ? ` · dL/d(output) max|d| ${fmt(c.grad_max_abs_diff, 2)}` : "") +
      " (hover a map for both values)");
    box.insertBefore(note, box.querySelector(".maps"));
  });
}

function renderForward() {
  applyStep();
  const f = state.fwd;
  if (!f) return;
  const x = decode(f.input);
  drawInput(x);
  f.layers.forEach((L, i) => {
    const head = layerBox(i).querySelector(".head");
    const info = state.model.layers[i];
    head.innerHTML = "";
    head.appendChild(el("b", {}, `${i} ${L.name}`));
    head.appendChild(document.createTextNode(
      ` ${L.kind}${info.describe ? " (" + info.describe + ")" : ""} → ${L.shape.join("×")} · min ${fmt(L.min, 3)} max ${fmt(L.max, 3)} mean ${fmt(L.mean, 3)}` +
      (L.zero_share !== null ? ` · zeros ${pct(L.zero_share)}` : "") + (L.tie_share !== null ? ` · pool ties ${pct(L.tie_share)}` : "")));
    if (state.view === "forward") drawTensor(i, decode(L.output), false);
  });
  renderProbabilities();
  if (state.view === "backward" && state.bwd) renderBackward();
}

function renderProbabilities() {
  const f = state.fwd, probs = $("probs");
  probs.textContent = "";
  if (!f.probabilities) { $("prediction").textContent = "(the model does not end in softmax)"; return; }
  const labels = state.model.labels;
  const last = f.layers.length - 1;
  f.probabilities.forEach((p, k) => {
    const bar = el("div", { class: "bar" + (k === f.predicted ? " top" : ""), "data-class": k });
    bar.appendChild(el("span", { class: "lab" }, labels[k]));
    const track = el("span", { class: "track" }), fill = el("span", { class: "fill" });
    fill.style.width = (100 * p).toFixed(1) + "%";
    track.appendChild(fill); bar.appendChild(track);
    bar.appendChild(el("span", {}, p.toFixed(3)));
    bar.addEventListener("click", () => selectUnit(last, [k]));
    probs.appendChild(bar);
  });
  const pred = $("prediction");
  pred.textContent = `${labels[f.predicted]} (${(100 * f.probabilities[f.predicted]).toFixed(1)}%)` +
    (state.label !== null && state.label !== undefined ? ` · true: ${labels[state.label]}` : "");
  pred.dataset.class = f.predicted;
}

function drawInput(x) {
  const [h, w, c] = x.shape;
  const cv = $("input-view");
  cv.width = w; cv.height = h;
  const ctx = cv.getContext("2d"), img = ctx.createImageData(w, h);
  for (let i = 0; i < w * h; i++) {
    for (let k = 0; k < 3; k++) img.data[4 * i + k] = Math.round(255 * x.data[i * c + (c === 3 ? k : 0)]);
    img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  drawReceptiveField(null);
}

// the input rows and columns a unit sees (Explorer.receptive_field in compute.py, repeated here
// for the static page); null when it sees the whole input
function receptiveField(layer, unit) {
  if (unit.length !== 3) return null;
  let [r0, r1, c0, c1] = [unit[0], unit[0], unit[1], unit[1]];
  for (let i = layer; i >= 0; i--) {
    const g = state.model.layers[i].geometry;
    if (!g) return null;
    const [kh, kw] = g.window, [sh, sw] = g.strides, [dh, dw] = g.dilation, top = g.pads[0], left = g.pads[2];
    [r0, r1] = [r0 * sh - top, r1 * sh - top + (kh - 1) * dh];
    [c0, c1] = [c0 * sw - left, c1 * sw - left + (kw - 1) * dw];
  }
  const [h, w] = state.model.input_shape;
  return { rows: [Math.max(r0, 0), Math.min(r1, h - 1)], cols: [Math.max(c0, 0), Math.min(c1, w - 1)] };
}

function drawReceptiveField(rf) {
  const cv = $("rf-overlay"), ctx = cv.getContext("2d");
  ctx.clearRect(0, 0, cv.width, cv.height);
  if (!rf || !state.model) return;
  const [h, w] = state.model.input_shape;
  const sx = cv.width / w, sy = cv.height / h;
  ctx.strokeStyle = "#ff8c00"; ctx.lineWidth = 2;
  ctx.fillStyle = "rgba(255,140,0,0.18)";
  const x0 = rf.cols[0] * sx, y0 = rf.rows[0] * sy;
  const ww = (rf.cols[1] - rf.cols[0] + 1) * sx, hh = (rf.rows[1] - rf.rows[0] + 1) * sy;
  ctx.fillRect(x0, y0, ww, hh); ctx.strokeRect(x0, y0, ww, hh);
}

// ------------------------------------------------------------------ backward
function renderBackward() {
  const b = state.bwd;
  if (!b) return;
  applyStep();
  $("loss").textContent = `loss −log p[${state.model.labels[b.target]}] = ${fmt(b.loss)} (p = ${fmt(b.probability)})`;
  $("explain").textContent = "Backward: each layer shows dL/d(its output) for the chosen class (red > 0, blue < 0). " +
    "Zeros after a ReLU are its closed mask; after max pooling only each window's first maximum receives gradient.";
  b.layers.forEach((L, i) => {
    const box = layerBox(i);
    const g = L.grad_logits ? decode(L.grad_logits) : (L.grad ? decode(L.grad) : null);
    let note = box.querySelector(".bnote");
    if (!note) { note = el("div", { class: "head bnote" }); box.insertBefore(note, box.querySelector(".maps")); }
    const mask = L.relu_mask ? decode(L.relu_mask).data : null;
    const open = mask ? mask.reduce((a, v) => a + v, 0) / mask.length : null;
    note.textContent = (L.grad_logits ? "dL/d(logits) = p − onehot(target)" : "dL/d(output)") +
      (mask ? ` · ReLU mask open for ${pct(open)} of units (gradient passes only there)` : "") +
      (L.routing ? " · " + L.routing : "");
    if (g) drawTensor(i, g, true);
  });
  const att = $("attribution");
  att.textContent = "";
  const fig = (title, what, p, diverging) => {
    const f = el("figure"), cv = el("canvas", { width: p.shape[1], height: p.shape[0] });
    const a = decode(p), [lo, hi] = range(a.data);
    paint(cv, p.shape[1], p.shape[0], a.data, 0, 1, 0, hi, diverging);
    f.appendChild(cv); f.appendChild(el("figcaption", {}, title + ": " + what));
    att.appendChild(f);
  };
  fig("Saliency", b.saliency.what, b.saliency.map, false);
  if (b.gradcam) fig("Grad-CAM", b.gradcam.what, b.gradcam.map, false);
  if (b.weight_grad) renderWeightGrad(b.weight_grad);
}

function renderWeightGrad(w) {
  const box = $("weight-grad");
  box.textContent = "";
  box.appendChild(el("h3", {}, `dL/dW of filter ${w.filter} (layer ${w.layer})`));
  const g = decode(w.grad);
  box.appendChild(el("div", { class: "eq" }, w.what));
  const t = decode(w.terms);
  box.appendChild(el("div", { class: "eq", id: "wg-sum", "data-value": w.entry_value },
    `sum of ${t.data.length} terms = ${fmt(w.terms_sum, 6)}; library dL/dW = ${fmt(w.entry_value, 6)}` +
    (w.grad_bias !== null ? `; dL/db = ${fmt(w.grad_bias, 6)}` : "")));
  if (g.shape.length === 3) box.appendChild(gridTables(g, "dL/dW", 4));
}

async function runBackward() {
  if (STATIC) { state.bwd = STATIC.backward; renderBackward(); return; }
  const sel = $("target").value;
  const body = { ...inputSpec(), target: sel === "label" ? "label" : +sel };
  if (state.selected && ["Conv2D", "Dense"].includes(state.model.layers[state.selected.layer].kind)) {
    body.layer = state.selected.layer; body.unit = state.selected.unit;
  }
  state.bwd = await api("/api/backward", body);
  if (state.view === "backward") renderBackward();
  if ($("tf-compare").checked) await runCompare();
}

function setView(v) {
  state.view = v;
  document.body.classList.toggle("backward", v === "backward");
  $("view-forward").classList.toggle("active", v === "forward");
  $("view-backward").classList.toggle("active", v === "backward");
  document.querySelectorAll(".bnote").forEach((n) => n.remove());
  $("explain").textContent = v === "forward" ? "Forward: each layer's output for this input (black = its minimum, white = its maximum)." : "";
  if (v === "backward") runBackward().catch((e) => setStatus(e.message, true));
  else { $("loss").textContent = ""; $("weight-grad").textContent = ""; renderForward(); }
}

// ------------------------------------------------------------------ unit detail
function table(rows, cls) {
  const t = el("table", cls ? { class: cls } : {});
  for (const row of rows) {
    const tr = el("tr");
    for (const c of row) {
      const td = el("td", c && c.win ? { class: "win" } : {}, c && c.v !== undefined ? c.v : c);
      tr.appendChild(td);
    }
    t.appendChild(tr);
  }
  return t;
}

function channel(a, ch) {
  const [h, w, c] = a.shape, rows = [];
  for (let r = 0; r < h; r++) { const row = []; for (let q = 0; q < w; q++) row.push(fmt(a.data[(r * w + q) * c + ch], 3)); rows.push(row); }
  return rows;
}

function gridTables(a, title, maxChannels) {
  const wrap = el("div", { class: "grid-group" });
  const c = a.shape[2];
  for (let ch = 0; ch < Math.min(c, maxChannels); ch++) {
    const d = el("div"); d.appendChild(el("div", { class: "hint" }, `${title} [:, :, ${ch}]`));
    d.appendChild(table(channel(a, ch))); wrap.appendChild(d);
  }
  if (c > maxChannels) wrap.appendChild(el("div", { class: "hint" }, `… ${c - maxChannels} more channels`));
  return wrap;
}

function renderUnit(u) {
  const d = $("detail");
  d.textContent = "";
  d.dataset.layer = u.layer; d.dataset.kind = u.kind; d.dataset.value = u.value;
  d.appendChild(el("p", {}, `layer ${u.layer} '${u.name}' (${u.kind}), unit [${u.unit.join(", ")}]`));
  d.appendChild(el("p", { class: "eq answer", id: "unit-value" }, `value = ${u.value}`));
  if (u.kernel) {
    const patch = decode(u.patch), kernel = decode(u.kernel), prod = decode(u.products);
    const sc = el("div", { class: "scroll" });
    for (let ch = 0; ch < patch.shape[2]; ch++) {
      const g = el("div", { class: "grid-group" });
      let s = 0; for (let i = ch; i < prod.data.length; i += patch.shape[2]) s += prod.data[i];
      [["input patch", patch], ["kernel", kernel], ["products", prod]].forEach(([n, a]) => {
        const b = el("div"); b.appendChild(el("div", { class: "hint" }, `${n} [:, :, ${ch}]`)); b.appendChild(table(channel(a, ch))); g.appendChild(b);
      });
      g.appendChild(el("div", { class: "hint" }, `channel sum ${fmt(s, 5)}`));
      sc.appendChild(g);
    }
    d.appendChild(sc);
    d.appendChild(el("div", { class: "eq answer", id: "conv-sum", "data-sum": u.sum, "data-bias": u.bias, "data-z": u.z },
      `Σ products (${prod.data.length}) = ${fmt(u.sum, 6)}; + bias ${fmt(u.bias, 6)} = z ${fmt(u.z, 6)}; ` +
      `${u.activation || "linear"}(z) = ${fmt(u.activated, 6)}`));
  }
  if (u.window) {
    d.appendChild(table(u.window.map((row, r) => row.map((v, c) => ({
      v: v === null ? "pad" : fmt(v, 4), win: u.winner && u.winner[0] === r && u.winner[1] === c })))));
    if (u.winner) d.appendChild(el("p", { class: "eq answer" }, `winner at window cell [${u.winner.join(", ")}]` +
      (u.tied > 1 ? `; ${u.tied} cells tie for the maximum: ${u.rule}` : "")));
    else d.appendChild(el("p", { class: "eq" }, `mean = ${fmt(u.mean, 6)}`));
  }
  if (u.contributions) {
    d.appendChild(el("p", { class: "hint" }, `largest of ${u.inputs} contributions x·w (${u.nonzero_inputs} inputs are non-zero)`));
    d.appendChild(table([["input", "x", "w", "x·w"], ...u.contributions.map((c) => [c.input, fmt(c.x), fmt(c.w), fmt(c.product)])]));
    d.appendChild(el("div", { class: "eq answer", id: "dense-sum" },
      `Σ x·w = ${fmt(u.sum, 6)}; + bias ${fmt(u.bias, 6)} = z ${fmt(u.z, 6)}; ${u.activation || "linear"}` +
      (u.activation === "softmax" ? " (below)" : `(z) = ${fmt(u.activated, 6)}`)));
  }
  if (u.softmax) {
    const s = u.softmax;
    d.appendChild(table([["class", "logit z", "exp(z − max)", "p"], ...s.logits.map((z, k) => [
      state.model.labels[k], fmt(z), fmt(s.exponentials[k]), { v: fmt(s.exponentials[k] / s.sum), win: k === s.class }])]));
    d.appendChild(el("div", { class: "eq answer" }, `p = exp(z − ${fmt(s.max_logit)}) / ${fmt(s.sum, 6)} = ${fmt(s.probability, 6)}`));
  }
  if (u.source) d.appendChild(el("p", { class: "eq" }, `reshaped from [${u.source.join(", ")}] of the layer before`));
  if (state.view === "backward" && state.bwd) d.appendChild(backwardAt(u));
  drawReceptiveField(u.receptive_field);
  d.appendChild(el("p", { class: "hint" }, u.receptive_field ?
    `receptive field: input rows ${u.receptive_field.rows.join("–")}, columns ${u.receptive_field.cols.join("–")} (orange on the input)` :
    "receptive field: the whole input"));
}

// the gradient at the clicked unit, and where it goes: through the ReLU mask, to the pool winner
function backwardAt(u) {
  const b = state.bwd, L = b.layers[u.layer], shape = state.model.layers[u.layer].output_shape;
  let flat = 0; for (let k = 0; k < shape.length; k++) flat = flat * shape[k] + u.unit[k];
  const box = el("div", { class: "eq", id: "backward-at" });
  const g = L.grad_logits || L.grad;
  if (!g) return box;
  const gv = decode(g).data[flat];
  const lines = [`${L.grad_logits ? "dL/d(logit)" : "dL/d(output)"} here = ${fmt(gv, 6)} (class ${state.model.labels[b.target]})`];
  if (L.relu_mask) {
    const open = decode(L.relu_mask).data[flat] > 0;
    lines.push(open ? `ReLU open (output > 0): dL/dz = ${fmt(gv, 6)}` : "ReLU closed (output = 0): dL/dz = 0, nothing flows back");
  }
  if (u.winner && u.window_origin && u.layer > 0) {
    const r = u.window_origin[0] + u.winner[0], c = u.window_origin[1] + u.winner[1];
    const prev = b.layers[u.layer - 1], ps = state.model.layers[u.layer - 1].output_shape;
    const pv = prev.grad ? decode(prev.grad).data[(r * ps[1] + c) * ps[2] + u.unit[2]] : null;
    lines.push(`routed to the winner, input cell [${r}, ${c}, ${u.unit[2]}]: dL/d(that cell) = ${fmt(pv, 6)}; ` +
      "the window's other cells get 0");
  }
  box.textContent = lines.join("\n");
  box.style.whiteSpace = "pre-wrap";
  return box;
}

async function selectUnit(layer, unit) {
  state.selected = { layer, unit };
  document.querySelectorAll(".maps canvas.selected").forEach((c) => c.classList.remove("selected"));
  const cv = document.querySelector(`.maps canvas[data-layer="${layer}"][data-ch="${unit[2]}"]`);
  if (cv) cv.classList.add("selected");
  $("opt-step").disabled = !["Conv2D", "Dense"].includes(state.model.layers[layer].kind);
  if (STATIC) {
    const L = state.fwd.layers[layer], a = decode(L.output), s = L.shape;
    let idx = 0; for (let k = 0; k < s.length; k++) idx = idx * s[k] + unit[k];
    renderUnit({ layer, name: L.name, kind: L.kind, unit, value: a.data[idx], receptive_field: receptiveField(layer, unit) });
    $("detail").appendChild(el("p", { class: "hint" }, "static page: run `minicnn explore` for the numbers behind a unit"));
    return;
  }
  try {
    renderUnit(await api("/api/unit", { ...inputSpec(), layer, unit }));
    if (state.view === "backward") await runBackward();
    setStatus("");
  } catch (e) { setStatus(e.message, true); }
}

async function optimizerStep() {
  const s = state.selected;
  if (!s) return;
  const sel = $("target").value;
  try {
    const r = await api("/api/step", { ...inputSpec(), target: sel === "label" ? "label" : +sel, layer: s.layer,
      unit: s.unit, learning_rate: +$("lr").value });
    const box = $("step-trace");
    box.textContent = "";
    box.appendChild(el("h3", {}, `one Adam step (t = ${r.iterations}, loss ${fmt(r.loss)}), filter ${r.filter} of layer ${r.layer}`));
    box.appendChild(el("div", { class: "eq" }, r.what + ` · α = ${fmt(r.alpha, 6)}`));
    const names = ["before", "grad", "m", "v", "m_hat", "v_hat", "step", "after"];
    const cols = names.map((n) => decode(r[n]).data);
    const n = Math.min(cols[0].length, 27);
    const rows = [["w#", ...names]];
    for (let i = 0; i < n; i++) rows.push([i, ...cols.map((c) => fmt(c[i], 5))]);
    box.appendChild(table(rows));
    if (cols[0].length > n) box.appendChild(el("p", { class: "hint" }, `first ${n} of ${cols[0].length} weights`));
  } catch (e) { setStatus(e.message, true); }
}

// ------------------------------------------------------------------ step through
// Forward: layers appear one at a time; for each, the app asks what its strongest unit will be
// (its inputs, kernel and products are shown, the sum and value covered) until "Reveal".
// Then backward, from the last layer to the first, asking for the largest gradient.
function applyStep() {
  const s = state.step;
  document.querySelectorAll(".layer").forEach((box) => {
    const i = +box.dataset.layer;
    box.classList.toggle("step-hidden", !!s && (s.phase === "forward" ? i > s.k : i < s.k));
    box.classList.toggle("step-secret", !!s && !s.revealed && i === s.k);
  });
}

function argmax(data, abs) {
  let best = 0;
  for (let i = 1; i < data.length; i++) if ((abs ? Math.abs(data[i]) : data[i]) > (abs ? Math.abs(data[best]) : data[best])) best = i;
  return best;
}

function unravel(i, shape) {
  const out = [];
  for (let k = shape.length - 1; k >= 0; k--) { out.unshift(i % shape[k]); i = Math.floor(i / shape[k]); }
  return out;
}

async function stepAsk() {
  const s = state.step, L = state.model.layers[s.k];
  s.revealed = false;
  applyStep();
  const q = $("step-question");
  if (s.phase === "forward") {
    const out = decode(state.fwd.layers[s.k].output);
    s.unit = unravel(argmax(out.data, false), out.shape);
    s.answer = out.data[argmax(out.data, false)];
    q.textContent = `Forward, layer ${s.k} '${L.name}' (${L.kind}): what will unit [${s.unit.join(", ")}] be?`;
    await selectUnit(s.k, s.unit);
    $("detail").classList.add("quiz");
  } else {
    const g = state.bwd.layers[s.k];
    const arr = decode(g.grad_logits || g.grad);
    const i = argmax(arr.data, true);
    s.unit = unravel(i, arr.shape);
    s.answer = arr.data[i];
    q.textContent = `Backward, layer ${s.k} '${L.name}': what is the largest |dL/d(output)|, at [${s.unit.join(", ")}]?`;
  }
  q.dataset.answer = s.answer;
}

function stepReveal() {
  const s = state.step;
  if (!s) return;
  s.revealed = true;
  applyStep();
  $("detail").classList.remove("quiz");
  $("step-question").textContent += ` → ${fmt(s.answer, 6)}`;
}

async function stepNext() {
  const s = state.step, n = state.model.layers.length;
  if (s.phase === "forward" && s.k + 1 < n) s.k += 1;
  else if (s.phase === "forward") {
    s.phase = "backward"; s.k = n - 1;
    setView("backward");
    await runBackward();
  } else if (s.k > 0) s.k -= 1;
  else { $("step-question").textContent = "Done: forward and backward, every layer."; s.revealed = true; applyStep(); return; }
  await stepAsk();
}

async function toggleStep() {
  if (state.step) {
    state.step = null;
    document.body.classList.remove("stepping");
    $("detail").classList.remove("quiz");
    setView("forward");
    return;
  }
  state.step = { phase: "forward", k: 0, revealed: false };
  document.body.classList.add("stepping");
  setView("forward");
  await stepAsk();
}

// ------------------------------------------------------------------ inputs
async function showForward(promise) {
  const t0 = performance.now();
  const f = await promise;
  state.fwd = f;
  state.input = f.input;
  state.label = f.label ?? null;
  if (f.steps) renderSteps(f.steps);
  renderForward();
  state.roundTrips.push(performance.now() - t0);
  setStatus(`updated in ${(performance.now() - t0).toFixed(0)} ms`);
  if (state.view === "backward") await runBackward();
  else if ($("tf-compare").checked) runCompare().catch((e) => setStatus(e.message, true));
}

function renderSteps(steps) {
  const box = $("steps");
  box.textContent = "";
  steps.forEach((s, i) => {
    const f = el("figure", { title: s.text }), img = el("img", { src: s.image, alt: s.name });
    f.appendChild(img); f.appendChild(el("figcaption", {}, `${i + 1}. ${s.name}`));
    box.appendChild(f);
  });
}

function sendDrawing() {
  if (state.inflight) { state.dirty = true; return; }
  state.inflight = true; state.dirty = false;
  state.index = null; state.label = null;
  $("input-source").textContent = "your drawing, prepared as `minicnn predict` prepares an image:";
  $("draw").toBlob((blob) => {
    showForward(api("/api/forward", blob, "image/png"))
      .catch((e) => setStatus(e.message, true))
      .finally(() => { state.inflight = false; if (state.dirty) sendDrawing(); });
  }, "image/png");
}

async function loadIndex(i) {
  try {
    state.index = i;
    $("steps").textContent = "";
    await showForward(api("/api/forward", { index: i }));
    $("input-source").textContent = `test image ${i} (class ${state.model.labels[state.label]})`;
    $("test-index").value = i;
  } catch (e) { setStatus(e.message, true); }
}

async function findNext(misclassified) {
  const start = (state.index === null ? -1 : state.index) + 1;
  const q = misclassified ? `misclassified=1&start=${start}&limit=1` : `label=${$("test-class").value}&start=${start}&limit=1`;
  try {
    setStatus("searching…");
    const r = await api("/api/test?" + q);
    if (!r.images.length) { setStatus("none found after this index"); return; }
    await loadIndex(r.images[0].index);
  } catch (e) { setStatus(e.message, true); }
}

function setupDrawing() {
  const cv = $("draw"), ctx = cv.getContext("2d");
  const clear = () => { ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, cv.width, cv.height); };
  clear();
  let down = false, last = null;
  const pos = (e) => [e.offsetX * cv.width / cv.clientWidth, e.offsetY * cv.height / cv.clientHeight];
  cv.addEventListener("pointerdown", (e) => { down = true; last = pos(e); cv.setPointerCapture(e.pointerId); stroke(e); });
  cv.addEventListener("pointermove", (e) => { if (down) stroke(e); });
  const up = () => { if (down) { down = false; sendDrawing(); } };
  cv.addEventListener("pointerup", up); cv.addEventListener("pointercancel", up);
  function stroke(e) {
    const p = pos(e);
    ctx.strokeStyle = $("pen-colour").value; ctx.lineWidth = +$("pen-width").value; ctx.lineCap = ctx.lineJoin = "round";
    ctx.beginPath(); ctx.moveTo(last[0], last[1]); ctx.lineTo(p[0], p[1]); ctx.stroke();
    last = p;
    sendDrawing();
  }
  $("clear").addEventListener("click", () => { clear(); sendDrawing(); });
  $("upload").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    state.index = null; state.label = null;
    $("input-source").textContent = `${file.name}, prepared as \`minicnn predict\` prepares an image:`;
    try { await showForward(api("/api/forward", file, file.type || "application/octet-stream")); } catch (err) { setStatus(err.message, true); }
  });
  $("load-index").addEventListener("click", () => loadIndex(+$("test-index").value));
  $("next-class").addEventListener("click", () => findNext(false));
  $("next-wrong").addEventListener("click", () => findNext(true));
}

function fillSelects() {
  const labels = state.model.labels;
  const tc = $("test-class"), tg = $("target");
  tc.textContent = ""; tg.textContent = "";
  labels.forEach((l, k) => { tc.appendChild(el("option", { value: k }, l)); tg.appendChild(el("option", { value: k }, l)); });
  tg.insertBefore(el("option", { value: "label" }, "true label (test image)"), tg.firstChild);
  tg.value = "0";
  tg.addEventListener("change", () => runBackward().catch((e) => setStatus(e.message, true)));
}

async function main() {
  $("view-forward").addEventListener("click", () => setView("forward"));
  $("view-backward").addEventListener("click", () => setView("backward"));
  $("opt-step").addEventListener("click", optimizerStep);
  $("step-mode").addEventListener("click", () => toggleStep().catch((e) => setStatus(e.message, true)));
  $("step-next").addEventListener("click", () => stepNext().catch((e) => setStatus(e.message, true)));
  $("step-reveal").addEventListener("click", stepReveal);
  if (STATIC) {
    document.body.classList.add("static");
    state.model = STATIC.model; state.label = STATIC.label ?? null;
    $("model-name").textContent = `${state.model.name} · static page`;
    fillSelects();
    $("target").value = String(STATIC.backward.target);
    $("target").disabled = true;  // the page holds the backward pass of this one class
    $("input-source").textContent = STATIC.source;
    if (STATIC.forward.steps) renderSteps(STATIC.forward.steps);
    state.fwd = STATIC.forward; state.input = STATIC.forward.input;
    setView("forward");
    return;
  }
  state.model = await api("/api/model");
  $("model-name").textContent = `${state.model.name} · ${state.model.params.toLocaleString()} parameters · input ${state.model.input_shape.join("×")}`;
  fillSelects();
  if (state.model.tensorflow) $("tf-toggle").hidden = false;
  $("tf-compare").addEventListener("change", () => runCompare().catch((e) => setStatus(e.message, true)));
  if (!state.model.test_images) document.querySelectorAll("#test-controls, #test-controls-2").forEach((n) => { n.hidden = true; });
  if (state.model.input_shape[2] !== 3) $("pen-colour").parentElement.hidden = true;
  setupDrawing();
  setView("forward");
  if (state.model.test_images) await loadIndex(0); else sendDrawing();
}

main().catch((e) => setStatus(e.message, true));
