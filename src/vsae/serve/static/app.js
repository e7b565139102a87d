// vsae latent browser: a hash-routed page over the JSON API of `vsae serve` (no dependencies).
"use strict";

const state = { sae: null, info: null };
const $ = (sel, root = document) => root.querySelector(sel);
const view = () => $("#view");

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
function fmt(x, d = 3) { return x === null || x === undefined ? "–" : Number(x).toFixed(d); }
function pct(x) { return x === null || x === undefined ? "–" : (100 * x).toFixed(2) + "%"; }
function q(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") p.set(k, v);
  return p.toString();
}
function api(path, params = {}) { return "/api/" + path + "?" + q({ ...params, sae: state.sae }); }

function showError(msg) {
  const e = $("#error");
  e.textContent = msg;
  e.hidden = !msg;
  if (msg) setTimeout(() => { if (e.textContent === msg) e.hidden = true; }, 8000);
}

async function getJSON(url, opts) {
  const r = await fetch(url, opts);
  let body;
  try { body = await r.json(); } catch { body = { error: r.statusText }; }
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

// a number input's value, or null when empty (the server then says which field is missing)
function numField(sel) { const v = $(sel).value.trim(); return v === "" ? null : Number(v); }

function hashParams() {
  const h = location.hash.slice(1) || "/";
  const [path, query] = h.split("?");
  return { path, params: new URLSearchParams(query || "") };
}
function setHash(path, params) {
  const s = q(params);
  location.hash = path + (s ? "?" + s : "");
}

// -- latent table ---------------------------------------------------------------------------
const COLS = [
  ["index", "latent"], ["ms", "MS"], ["freq", "firing freq."], ["max", "max act."],
  ["name", "name"], ["group", "group"], [null, "flags"],
];

async function renderTable(params) {
  const p = {
    sort: params.get("sort") || "index", order: params.get("order") || "asc", q: params.get("q") || "",
    filter: params.get("filter") || "all", group: params.get("group") || "",
    offset: Number(params.get("offset") || 0), limit: 50,
  };
  const data = await getJSON(api("latents", p));
  const info = state.info;
  const groups = info.groups ? Array.from({ length: info.groups }, (_, i) => i) : [];
  const head = COLS.map(([k, label]) => {
    if (!k) return `<th>${label}</th>`;
    const on = p.sort === k;
    const arrow = on ? (p.order === "asc" ? " ▲" : " ▼") : "";
    return `<th><a href="#" class="sort" data-sort="${k}" id="sort-${k}">${label}${arrow}</a></th>`;
  }).join("");
  const rows = data.rows.map((r) => `<tr class="latent-row" data-latent="${r.latent}">
      <td><a href="#/latent/${r.latent}">#${r.latent}</a></td><td class="num ms">${fmt(r.ms)}</td>
      <td class="num">${pct(r.freq)}</td><td class="num">${fmt(r.max, 2)}</td>
      <td class="name">${esc(r.name ?? "")}${r.name_score !== null && r.name_score !== undefined ? ` <span class="muted">(${fmt(r.name_score, 2)})</span>` : ""}</td>
      <td class="num">${r.group ?? "–"}</td>
      <td>${r.dead ? '<span class="flag dead">dead</span>' : ""}${r.dense ? '<span class="flag dense">dense</span>' : ""}</td></tr>`).join("");
  const last = Math.min(p.offset + data.rows.length, data.total);
  view().innerHTML = `
    <section class="controls">
      <input id="search" type="search" placeholder="search names or #index" value="${esc(p.q)}">
      <select id="filter">${["all", "alive", "dead", "dense"].map((f) => `<option ${f === p.filter ? "selected" : ""}>${f}</option>`).join("")}</select>
      ${groups.length ? `<select id="group"><option value="">all groups</option>${groups.map((g) => `<option value="${g}" ${String(g) === p.group ? "selected" : ""}>group ${g}</option>`).join("")}</select>` : ""}
      <span id="count" class="muted">${data.total ? `${p.offset + 1}–${last} of ${data.total}` : "no latents match"}</span>
      <button id="prev" ${p.offset === 0 ? "disabled" : ""}>◀ prev</button>
      <button id="next" ${last >= data.total ? "disabled" : ""}>next ▶</button>
    </section>
    <table id="latent-table"><thead><tr>${head}</tr></thead><tbody>${rows}</tbody></table>`;
  const go = (ch) => setHash("/", { ...p, limit: null, ...ch });
  view().querySelectorAll("a.sort").forEach((a) => a.addEventListener("click", (ev) => {
    ev.preventDefault();
    const k = a.dataset.sort;
    const order = p.sort === k ? (p.order === "asc" ? "desc" : "asc") : (k === "index" || k === "name" ? "asc" : "desc");
    go({ sort: k, order, offset: 0 });
  }));
  let timer;
  $("#search").addEventListener("input", (ev) => {
    clearTimeout(timer);
    timer = setTimeout(() => go({ q: ev.target.value, offset: 0 }), 250);
  });
  $("#search").addEventListener("keydown", (ev) => { if (ev.key === "Enter") go({ q: ev.target.value, offset: 0 }); });
  $("#filter").addEventListener("change", (ev) => go({ filter: ev.target.value, offset: 0 }));
  if ($("#group")) $("#group").addEventListener("change", (ev) => go({ group: ev.target.value, offset: 0 }));
  $("#prev").addEventListener("click", () => go({ offset: Math.max(0, p.offset - p.limit) }));
  $("#next").addEventListener("click", () => go({ offset: p.offset + p.limit }));
  if (p.q) { const s = $("#search"); s.focus(); s.setSelectionRange(s.value.length, s.value.length); }
}

// -- latent page ----------------------------------------------------------------------------
function imageCard(f, im, heat) {
  const src = api(`image/${im.image}.png`);
  const hsrc = heat ? api(`heatmap/${f}/${im.image}.png`) : null;
  return `<figure class="card">
      <img class="img" src="${src}" alt="image ${im.image}" loading="eager">
      ${hsrc ? `<img class="heat" src="${hsrc}" alt="latent ${f} on image ${im.image}" loading="eager">` : ""}
      <figcaption>#${im.image} · ${fmt(im.value, 2)}</figcaption></figure>`;
}

function histogramSVG(h) {
  if (!h) return '<p class="muted">never fires on these images</p>';
  const W = 420, H = 120, n = h.counts.length, mx = Math.max(...h.counts, 1);
  const bars = h.counts.map((c, i) => {
    const bh = c ? Math.max(1, (H - 20) * Math.log1p(c) / Math.log1p(mx)) : 0;
    return `<rect x="${(i * W) / n + 1}" y="${H - 18 - bh}" width="${W / n - 2}" height="${bh}"><title>${fmt(h.edges[i], 2)}–${fmt(h.edges[i + 1], 2)}: ${c}</title></rect>`;
  }).join("");
  return `<svg id="histogram" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="activation histogram">
    ${bars}<text x="0" y="${H - 4}">${fmt(h.edges[0], 2)}</text><text x="${W}" y="${H - 4}" text-anchor="end">${fmt(h.edges[n], 2)}</text></svg>
    <p class="muted">non-zero activations per image (log counts); ${h.zeros} images where it is 0</p>`;
}

async function renderLatent(f) {
  const d = await getJSON(api(`latent/${f}`));
  const heat = !d.heatmaps;
  const purity = d.purity ? `<table class="purity"><tr><th>attribute</th><th>most common value</th><th>share of top images</th></tr>
      ${d.purity.slice(0, 5).map((p) => `<tr><td>${esc(p.attribute)}</td><td>${esc(p.value)}</td><td class="num">${pct(p.fraction)}</td></tr>`).join("")}</table>`
    : '<p class="muted">no ground truth for these images</p>';
  const near = d.nearest.map((n) => `<li><a href="#/latent/${n.latent}">#${n.latent}</a> ${esc(n.name ?? "")} <span class="muted">cos ${fmt(n.cos, 3)} · MS ${fmt(n.ms)}</span></li>`).join("");
  const quant = d.quantiles.map((qq) => `<div class="quantile"><h4>${qq.label} <span class="muted">(${fmt(qq.range[0], 2)}–${fmt(qq.range[1], 2)})</span></h4>
      <div class="grid">${qq.images.map((im) => imageCard(f, im, false)).join("")}</div></div>`).join("");
  view().innerHTML = `
    <section class="latent-head">
      <h2 id="latent-title">Latent #${d.latent} ${d.name ? `<span class="name">${esc(d.name)}</span>` : ""}</h2>
      <p>
        <a href="#/latent/${Math.max(0, d.latent - 1)}" id="prev-latent">◀ #${Math.max(0, d.latent - 1)}</a>
        · <a href="#/">table</a> ·
        <a href="#/latent/${Math.min(state.info.n_latents - 1, d.latent + 1)}" id="next-latent">#${Math.min(state.info.n_latents - 1, d.latent + 1)} ▶</a>
      </p>
      <dl class="stats">
        <dt>MS</dt><dd id="latent-ms">${fmt(d.ms)}</dd>
        <dt>name score</dt><dd>${fmt(d.name_score, 3)}</dd>
        <dt>firing freq.</dt><dd>${pct(d.freq)}</dd>
        <dt>max act.</dt><dd>${fmt(d.max, 3)}</dd>
        <dt>group</dt><dd>${d.group ?? "–"}</dd>
        <dt>flags</dt><dd>${d.dead ? "dead " : ""}${d.dense ? "dense" : ""}${!d.dead && !d.dense ? "–" : ""}</dd>
      </dl>
    </section>
    <section><h3>Top ${d.top.length} images ${heat ? "with patch heatmaps" : ""}</h3>
      ${heat ? "" : `<p class="muted">${esc(d.heatmaps)}</p>`}
      <div class="grid" id="top-images">${d.top.map((im) => imageCard(d.latent, im, heat)).join("") || '<p class="muted">no images</p>'}</div></section>
    <section class="row">
      <div><h3>Activation histogram</h3>${histogramSVG(d.histogram)}</div>
      <div><h3>Ground truth of the top images</h3>${purity}</div>
      <div><h3>Nearest latents (decoder cosine)</h3><ol id="nearest">${near}</ol></div>
    </section>
    <section><h3>Images by activation quantile</h3><div id="quantiles">${quant || '<p class="muted">none</p>'}</div></section>`;
}

// -- your own image -------------------------------------------------------------------------
// POST `body`, calling onProgress(fraction sent) as it uploads; the JSON answer (or its error)
function postWithProgress(url, body, onProgress) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open("POST", url);
    x.setRequestHeader("Content-Type", "application/octet-stream");
    x.upload.onprogress = (ev) => { if (ev.lengthComputable) onProgress(ev.loaded / ev.total); };
    x.upload.onload = () => onProgress(1);
    x.onload = () => {
      let b;
      try { b = JSON.parse(x.responseText); } catch { b = { error: x.statusText || "bad answer" }; }
      if (x.status >= 200 && x.status < 300) resolve(b); else reject(new Error(b.error || x.statusText));
    };
    x.onerror = () => reject(new Error("the upload failed (network error)"));
    x.send(body);
  });
}

function renderUpload() {
  view().innerHTML = `<section><h2>Your own image</h2>
    <p>Pick an image (at most ${(state.info.max_upload_bytes / 1048576).toFixed(0)} MiB); its top latents and where they fire.</p>
    <input type="file" id="upload-file" accept="image/*">
    <div id="upload-result"></div></section>`;
  $("#upload-file").addEventListener("change", async (ev) => {
    const file = ev.target.files[0];
    if (!file) return;
    const out = $("#upload-result");
    out.innerHTML = '<p class="muted" id="upload-progress">uploading… 0%</p>';
    const t0 = performance.now();
    try {
      const d = await postWithProgress(api("upload"), file, (frac) => {
        const p = $("#upload-progress");
        if (p) p.textContent = frac < 1 ? `uploading… ${(100 * frac).toFixed(0)}%`
          : "encoding on the server (resized to the model's input)…";
      });
      const cards = d.latents.map((l) => `<figure class="card upload-latent">
          ${l.heatmap ? `<img class="heat" src="${l.heatmap}" alt="latent ${l.latent}">` : ""}
          <figcaption><a href="#/latent/${l.latent}">#${l.latent}</a> ${esc(l.name ?? "")} · ${fmt(l.value, 2)} · MS ${fmt(l.ms)}</figcaption></figure>`).join("");
      const secs = ((performance.now() - t0) / 1000).toFixed(1);
      out.innerHTML = `<p class="muted" id="upload-progress">done in ${secs} s</p>
        <div class="row"><figure class="card"><img id="upload-image" src="${d.image}" alt="your image"><figcaption>${d.size.join("×")} px, seen by the model at ${d.model_size.join("×")} px</figcaption></figure></div>
        ${d.heatmaps ? `<p class="muted">${esc(d.heatmaps)}</p>` : ""}
        <h3>Top latents</h3><div class="grid" id="upload-latents">${cards || '<p class="muted">no latent fires</p>'}</div>`;
    } catch (e) {
      out.innerHTML = "";
      showError(e.message);
    }
  });
}

// -- steering playground --------------------------------------------------------------------
async function renderSteer(params) {
  view().innerHTML = '<p class="muted">loading the LLaVA…</p>';
  const s = await getJSON(api("steer/info"));
  const latent = params.get("latent") || (s.suggested[0] ? s.suggested[0].latent : 0);
  const imgs = s.images.map((i, j) => `<label class="pick"><input type="radio" name="steer-image" value="${i}" ${j === 0 ? "checked" : ""}>
      <img src="${api(`image/${i}.png`)}" alt="image ${i}"></label>`).join("");
  const sugg = s.suggested.map((l) => `<option value="${l.latent}">#${l.latent} ${esc(l.name ?? "")}</option>`).join("");
  view().innerHTML = `<section><h2>Steering playground</h2>
    <p class="muted">${esc(s.llava)} · SAE of ${s.n_latents} latents at ${esc(s.hook)} of its vision tower; the edit applies to every token, the SAE error term kept (Pach et al.).</p>
    <form id="steer-form" class="controls">
      <label>latent of the steering SAE <input id="steer-latent" type="number" min="0" max="${s.n_latents - 1}" value="${esc(latent)}" list="steer-suggested"></label>
      <datalist id="steer-suggested">${sugg}</datalist>
      <label>op <select id="steer-op">${s.ops.map((o) => `<option>${o}</option>`).join("")}</select></label>
      <label>value <input id="steer-value" type="number" step="any" value="${s.value}"></label>
      <label class="wide">question <input id="steer-question" type="text" value="${esc(s.question)}"></label>
      <button id="steer-run" type="submit">Steer</button>
    </form>
    <div class="picks">${imgs}</div>
    <div id="steer-result"></div>
    ${s.diffusion ? `<h3>Generated images</h3><form id="diff-form" class="controls"><label class="wide">prompt <input id="diff-prompt" type="text" value="a red circle"></label><button type="submit" id="diff-run">Generate</button></form><div id="diff-result"></div>` : `<p class="muted" id="diff-none">Diffusion steering: not available in this server.</p>`}
  </section>`;
  const edit = () => ({ latent: numField("#steer-latent"), op: $("#steer-op").value, value: numField("#steer-value") });
  $("#steer-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = $("#steer-result");
    const image = Number($('input[name="steer-image"]:checked').value);
    out.innerHTML = '<p class="muted">asking…</p>';
    try {
      const r = await getJSON(api("steer"), { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ ...edit(), image, question: $("#steer-question").value }) });
      const changed = r.steered !== r.unsteered;
      out.innerHTML = `<table class="answers"><tr><th>unsteered</th><td id="answer-unsteered">${esc(r.unsteered)}</td></tr>
        <tr><th>${esc(r.op)} #${r.latent} = ${r.value}</th><td id="answer-steered">${esc(r.steered)}</td></tr></table>
        <p id="answer-changed" class="${changed ? "changed" : "muted"}">${changed ? "the answer changed" : "the answer did not change"}</p>`;
    } catch (e) { out.innerHTML = ""; showError(e.message); }
  });
  if ($("#diff-form")) $("#diff-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = $("#diff-result");
    out.innerHTML = '<p class="muted">generating…</p>';
    try {
      const r = await getJSON(api("steer/diffusion"), { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ ...edit(), prompt: $("#diff-prompt").value }) });
      out.innerHTML = `<div class="row"><figure class="card"><img id="diff-unsteered" src="${r.unsteered}" alt="unsteered"><figcaption>unsteered</figcaption></figure>
        <figure class="card"><img id="diff-steered" src="${r.steered}" alt="steered"><figcaption>${esc(r.op)} #${r.latent} = ${r.value}</figcaption></figure></div>`;
    } catch (e) { out.innerHTML = ""; showError(e.message); }
  });
}

// -- router ---------------------------------------------------------------------------------
async function route() {
  const { path, params } = hashParams();
  document.querySelectorAll("nav a").forEach((a) => a.classList.remove("on"));
  try {
    let m;
    if ((m = path.match(/^\/latent\/(\d+)$/))) await renderLatent(Number(m[1]));
    else if (path === "/upload") { $("#nav-upload").classList.add("on"); renderUpload(); }
    else if (path === "/steer") { $("#nav-steer").classList.add("on"); await renderSteer(params); }
    else { $("#nav-table").classList.add("on"); await renderTable(params); }
    document.body.dataset.view = path;
  } catch (e) {
    view().innerHTML = `<p class="error-line">error: ${esc(e.message)}</p>`;
  }
}

async function loadInfo() {
  state.info = await getJSON(api("info"));
  state.sae = state.info.sae;
  const sel = $("#sae-select");
  sel.innerHTML = state.info.saes.map((s) => `<option ${s === state.sae ? "selected" : ""}>${esc(s)}</option>`).join("");
  const i = state.info;
  const b = $("#banner");
  b.textContent = i.warning ? "warning: " + i.warning : "";
  b.hidden = !i.warning;
  $("#sae-info").textContent = `${i.arch} · ${i.n_latents} latents · ${i.n_images} images · ${i.hook} (${i.tokens})`;
}

async function start() {
  const saved = sessionStorage.getItem("vsae-sae");
  if (saved) state.sae = saved;
  try { await loadInfo(); } catch (e) { state.sae = null; await loadInfo(); }
  $("#sae-select").addEventListener("change", async (ev) => {
    state.sae = ev.target.value;
    sessionStorage.setItem("vsae-sae", state.sae);
    await loadInfo();
    route();
  });
  window.addEventListener("hashchange", route);
  await route();
}
start().catch((e) => showError(e.message));
