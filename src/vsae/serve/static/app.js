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
// a link inside the app: every URL names the SAE, so a shared link opens the same view of the same SAE
function link(path, params = {}) { const s = q({ ...params, sae: state.sae }); return "#" + path + (s ? "?" + s : ""); }
function setTitle(what) { document.title = `${what} · ${state.sae} — vsae`; }

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
function setHash(path, params) { location.hash = link(path, params).slice(1); }
// record a view's state in the URL without re-rendering it
function replaceHash(path, params) { history.replaceState(null, "", link(path, params)); }

// -- latent table ---------------------------------------------------------------------------
const COLS = [
  ["index", "latent"], [null, "top images"], ["ms", "MS"], ["freq", "fires on"], ["max", "max act."],
  ["name", "name"], [null, "explanation"], ["group", "group"], [null, "flags"],
];
const NO_MS = "no MS: it fires on fewer than 2 images, so MS is undefined (dead: it fires on none)";

async function renderTable(params) {
  const p = {
    sort: params.get("sort") || "index", order: params.get("order") || "asc", q: params.get("q") || "",
    filter: params.get("filter") || "all", group: params.get("group") || "",
    offset: Number(params.get("offset") || 0), limit: 50, min_count: params.get("min_count") || "",
  };
  const data = await getJSON(api("latents", p));
  setTitle("Latents");
  const info = state.info;
  const groups = info.groups ? Array.from({ length: info.groups }, (_, i) => i) : [];
  const head = COLS.map(([k, label]) => {
    if (!k) return `<th>${label}</th>`;
    const on = p.sort === k;
    const arrow = on ? (p.order === "asc" ? " ▲" : " ▼") : "";
    return `<th><a href="#" class="sort" data-sort="${k}" id="sort-${k}">${label}${arrow}</a></th>`;
  }).join("");
  const rows = data.rows.map((r) => `<tr class="latent-row" data-latent="${r.latent}">
      <td><a href="${link(`/latent/${r.latent}`)}">#${r.latent}</a></td>
      <td class="thumbs">${r.thumbs.map((i) => `<img class="thumb" src="${api(`image/${i}.png`)}" alt="image ${i}" loading="lazy">`).join("")}</td>
      <td class="num ms"${r.ms === null ? ` title="${NO_MS}"` : ""}>${fmt(r.ms)}</td>
      <td class="num count">${r.n_fires} <span class="muted">(${pct(r.freq)})</span></td><td class="num">${fmt(r.max, 2)}</td>
      <td class="name">${esc(r.name ?? "")}${r.name_score !== null && r.name_score !== undefined ? ` <span class="muted">(${fmt(r.name_score, 2)})</span>` : ""}</td>
      <td class="explanation">${explainCell(r)}</td>
      <td class="num">${r.group ?? "–"}</td>
      <td>${r.dead ? '<span class="flag dead">dead</span>' : ""}${r.dense ? '<span class="flag dense">dense</span>' : ""}</td></tr>`).join("");
  const last = Math.min(p.offset + data.rows.length, data.total);
  view().innerHTML = `
    <section class="controls">
      <input id="search" type="search" placeholder="search names or #index" value="${esc(p.q)}">
      <select id="filter">${["all", "alive", "dead", "dense"].map((f) => `<option ${f === p.filter ? "selected" : ""}>${f}</option>`).join("")}</select>
      ${groups.length ? `<select id="group"><option value="">all groups</option>${groups.map((g) => `<option value="${g}" ${String(g) === p.group ? "selected" : ""}>group ${g}</option>`).join("")}</select>` : ""}
      <label title="hide latents that fire on fewer images (their MS rests on very few)">fires on ≥ <input id="min-count" type="number" min="0" step="1" value="${esc(p.min_count)}" placeholder="0"> images</label>
      <span id="count" class="muted">${!data.total ? "no latents match" : data.rows.length ? `${p.offset + 1}–${last} of ${data.total}` : `nothing at ${p.offset + 1}: there are ${data.total}`}</span>
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
  $("#min-count").addEventListener("change", (ev) => go({ min_count: ev.target.value, offset: 0 }));
  if ($("#group")) $("#group").addEventListener("change", (ev) => go({ group: ev.target.value, offset: 0 }));
  $("#prev").addEventListener("click", () => go({ offset: Math.max(0, Math.min(p.offset, data.total) - p.limit) }));
  $("#next").addEventListener("click", () => go({ offset: p.offset + p.limit }));
  if (p.q) { const s = $("#search"); s.focus(); s.setSelectionRange(s.value.length, s.value.length); }
}

// -- latent page ----------------------------------------------------------------------------
function imageCard(f, im, heat, vmax) {
  const src = api(`image/${im.image}.png`);
  const hsrc = heat ? api(`heatmap/${f}/${im.image}.png`, vmax ? { vmax } : {}) : null;
  return `<figure class="card">
      <img class="img" src="${src}" alt="image ${im.image}" loading="eager">
      ${hsrc ? `<img class="heat" src="${hsrc}" alt="latent ${f} on image ${im.image}" loading="eager">` : ""}
      <figcaption>#${im.image} · ${fmt(im.value, 2)}${heat && im.patch_max === 0 ? ' · <span class="blank-map" title="the latent fires on the image (its pooled token) but on none of its patch tokens">no patch fires</span>' : ""}</figcaption></figure>`;
}

// the heatmaps' colour scale: 0 .. vmax in the maps' colours (an SVG gradient: no inline styles, CSP)
function colourScale(vmax) {
  const cm = state.info.colormap || [];
  const stops = cm.map((c, i) => `<stop offset="${(100 * i) / Math.max(cm.length - 1, 1)}%" stop-color="${c}"/>`).join("");
  return `<svg id="colour-scale" width="240" height="30" viewBox="0 0 240 30" role="img" aria-label="heatmap colour scale">
    <defs><linearGradient id="cscale">${stops}</linearGradient></defs><rect x="0" y="0" width="240" height="12" fill="url(#cscale)"/>
    <text x="0" y="26">0</text><text x="240" y="26" text-anchor="end">${fmt(vmax, 2)}</text></svg>`;
}

function histogramSVG(h) {
  if (!h) return '<p class="muted">never fires on these images</p>';
  const W = 420, H = 120, n = h.counts.length, mx = Math.max(...h.counts, 1);
  const bars = h.counts.map((c, i) => {
    const bh = c ? Math.max(1, (H - 34) * Math.log1p(c) / Math.log1p(mx)) : 0;
    return `<rect x="${(i * W) / n + 1}" y="${H - 18 - bh}" width="${W / n - 2}" height="${bh}"><title>${fmt(h.edges[i], 2)}–${fmt(h.edges[i + 1], 2)}: ${c}</title></rect>`;
  }).join("");
  return `<svg id="histogram" viewBox="0 0 ${W} ${H + 14}" width="${W}" height="${H + 14}" role="img" aria-label="activation histogram">
    ${bars}<text x="0" y="${H - 4}">${fmt(h.edges[0], 2)}</text><text x="${W}" y="${H - 4}" text-anchor="end">${fmt(h.edges[n], 2)}</text>
    <text class="axis" x="${W / 2}" y="${H + 10}" text-anchor="middle">activation (pooled per image)</text>
    <text class="axis" x="2" y="10">images (log scale), max ${mx}</text></svg>
    <p class="muted">non-zero activations per image; ${h.zeros} images where it is 0</p>`;
}

// a latent of a steering SAE (the LLaVA's, or the text-to-image model's text-encoder SAE) opens
// its steering panel with the SAE and the latent filled in
function steerWith(f) {
  const panel = state.info.steer_panel;
  if (!panel) return "";
  const params = panel === "llava" ? { latent: f } : { dlatent: f };
  const what = panel === "llava" ? "the LLaVA's answer" : "generated images";
  return ` · <a id="steer-with" class="steer-with" href="${link("/steer", params)}" title="open the steering panel with this latent (${what})">steer with this latent ▸</a>`;
}

// a latent field's value when it is a whole number in 0..n-1, else null (with an error naming the SAE)
function latentField(sel, n, what) {
  const v = $(sel).value.trim();
  if (/^\d+$/.test(v) && Number(v) < n) return Number(v);
  showError(`give latent: a whole number in 0..${n - 1} of the ${what}${v === "" ? "" : ` (not ${v.slice(0, 20)})`}`);
  $(sel).focus();
  return null;
}

async function renderLatent(f) {
  const d = await getJSON(api(`latent/${f}`));
  setTitle(`Latent #${d.latent}${d.name ? " " + d.name : ""}`);
  const heat = !d.heatmaps;
  const vmax = d.map_max;
  const note = d.map_note ? `<p id="map-note" class="${d.map_note.out_of_distribution ? "ood" : "muted"}">${esc(d.map_note.text)}</p>` : "";
  const purity = d.purity ? `<table class="purity"><tr><th>attribute</th><th>most common value</th><th>share of top images</th></tr>
      ${d.purity.slice(0, 5).map((p) => `<tr><td>${esc(p.attribute)}</td><td>${esc(p.value)}</td><td class="num">${pct(p.fraction)}</td></tr>`).join("")}</table>`
    : '<p class="muted">no ground truth for these images</p>';
  const near = d.nearest.map((n) => `<li><a href="${link(`/latent/${n.latent}`)}">#${n.latent}</a> ${esc(n.name ?? "")} <span class="muted">cos ${fmt(n.cos, 3)} · MS ${fmt(n.ms)} · fires on ${n.n_fires}</span></li>`).join("");
  const nearDead = d.nearest_dead.length ? `<p id="nearest-dead" class="muted">closer but dead (never fire here): ${d.nearest_dead.map((n) => `<a href="${link(`/latent/${n.latent}`)}">#${n.latent}</a> <span class="flag dead">dead</span> cos ${fmt(n.cos, 3)}`).join(", ")}</p>` : "";
  const coact = d.coactive.map((n) => `<li><a href="${link(`/latent/${n.latent}`)}">#${n.latent}</a> ${esc(n.name ?? "")} <span class="muted">Jaccard ${fmt(n.jaccard, 2)} · both on ${n.both} · MS ${fmt(n.ms)}</span></li>`).join("");
  const quant = d.quantiles.map((qq) => `<div class="quantile"><h4>${qq.label} <span class="muted">(${fmt(qq.range[0], 2)}–${fmt(qq.range[1], 2)})</span></h4>
      <div class="grid">${qq.images.map((im) => imageCard(f, im, heat, vmax)).join("")}</div></div>`).join("");
  const prev = Math.max(0, d.latent - 1), next = Math.min(state.info.n_latents - 1, d.latent + 1);
  const msText = d.ms !== null ? fmt(d.ms) : d.dead ? "– (dead)" : `– (fires on ${d.n_fires} image${d.n_fires === 1 ? "" : "s"})`;
  view().innerHTML = `
    <section class="latent-head">
      <h2 id="latent-title">Latent #${d.latent} ${d.name ? `<span class="name">${esc(d.name)}</span>` : ""}</h2>
      <p>
        <a href="${link(`/latent/${prev}`)}" id="prev-latent">◀ #${prev}</a>
        · <a href="${link("/")}">table</a> ·
        <a href="${link(`/latent/${next}`)}" id="next-latent">#${next} ▶</a>
        ${steerWith(d.latent)}
      </p>
      <dl class="stats">
        <dt>MS</dt><dd id="latent-ms"${d.ms === null ? ` title="${NO_MS}"` : ""}>${msText}</dd>
        <dt>fires on</dt><dd id="latent-count">${d.n_fires} of ${d.n_images} images</dd>
        <dt>name score</dt><dd>${fmt(d.name_score, 3)}</dd>
        <dt>firing freq.</dt><dd>${pct(d.freq)}</dd>
        <dt>max act.</dt><dd>${fmt(d.max, 3)}</dd>
        <dt>group</dt><dd>${d.group ?? "–"}</dd>
        <dt>flags</dt><dd>${d.dead ? "dead " : ""}${d.dense ? "dense" : ""}${!d.dead && !d.dense ? "–" : ""}</dd>
      </dl>${explainBlock(d)}
    </section>
    <section>${d.top.length ? `<h3>Top ${d.top.length} images${heat ? " with patch heatmaps" : ""}</h3>
      ${heat ? `${note}${colourScale(vmax)}` : `<p class="muted">${esc(d.heatmaps)}</p>`}
      <div class="grid" id="top-images">${d.top.map((im) => imageCard(d.latent, im, heat, vmax)).join("")}</div>`
      : `<h3 id="no-top">No top images: this latent never fires on the ${d.n_images} images served (dead)</h3>`}</section>
    <section class="row">
      <div><h3>Activation histogram</h3>${histogramSVG(d.histogram)}</div>
      <div><h3>Ground truth of the top images</h3>${purity}</div>
      <div><h3>Nearest live latents (decoder cosine)</h3><ol id="nearest">${near}</ol>${nearDead}</div>
      <div><h3>Fire on the same images (co-activation)</h3>${coact ? `<ol id="coactive">${coact}</ol>` : '<p class="muted" id="coactive">none</p>'}</div>
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
  setTitle("Your image");
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
          <figcaption><a href="${link(`/latent/${l.latent}`)}">#${l.latent}</a> ${esc(l.name ?? "")} · ${fmt(l.value, 2)} · MS ${fmt(l.ms)}</figcaption></figure>`).join("");
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
  setTitle("Steering");
  view().innerHTML = '<p class="muted">loading the LLaVA…</p>';
  const s = await getJSON(api("steer/info"));
  const latent = params.get("latent") ?? (s.suggested[0] ? s.suggested[0].latent : 0);
  const op = s.ops.includes(params.get("op")) ? params.get("op") : "clamp";
  const value = params.get("value") ?? s.value;
  const image = params.get("image") && s.images.includes(Number(params.get("image"))) ? Number(params.get("image")) : s.images[0];
  const imgs = s.images.map((i) => `<label class="pick"><input type="radio" name="steer-image" value="${i}" ${i === image ? "checked" : ""}>
      <img src="${api(`image/${i}.png`)}" alt="image ${i}"></label>`).join("");
  const sugg = s.suggested.map((l) => `<option value="${l.latent}">#${l.latent} ${esc(l.name ?? "")}</option>`).join("");
  const opts = (sel) => s.ops.map((o) => `<option ${o === sel ? "selected" : ""}>${o}</option>`).join("");
  // the diffusion panel's own default value: the strength its experiment steered the latent with
  const dValue = (f) => {
    const sg = s.diffusion_suggested.find((l) => String(l.latent) === String(f ?? s.diffusion_suggested[0]?.latent));
    return sg && sg.value !== undefined && sg.value !== null ? sg.value : s.value;
  };
  const editText = (r) => r.op === "ablate" ? `ablate #${r.latent}` : `${esc(r.op)} #${r.latent} = ${r.value}`;
  view().innerHTML = `<section><h2>Steering playground</h2>
    <p class="muted">${esc(s.llava)} · SAE of ${s.n_latents} latents at ${esc(s.hook)} of its vision tower (${state.sae === s.steering_sae ? "the browsed SAE" : "a different dictionary from the browsed SAE"}); the edit applies to every token, the SAE error term kept (Pach et al.).</p>
    <form id="steer-form" class="controls" novalidate>
      <label>latent of the steering SAE <input id="steer-latent" type="number" min="0" max="${s.n_latents - 1}" step="1" value="${esc(latent)}" list="steer-suggested"></label>
      <datalist id="steer-suggested">${sugg}</datalist>
      <button type="button" id="steer-inspect-run" title="its top images among the served ones, before steering with it">inspect</button>
      ${s.steering_sae ? `<a id="steer-browse" href="#" title="its page in the browser: top images with heatmaps, histogram, neighbours, MS">browse it ▸</a>` : ""}
      <label>op <select id="steer-op">${opts(op)}</select></label>
      <label>value <input id="steer-value" type="number" step="any" value="${esc(value)}"></label>
      <label class="wide">question <input id="steer-question" type="text" value="${esc(s.question)}"></label>
      <button id="steer-run" type="submit">Steer</button>
    </form>
    <div id="steer-inspect"></div>
    <div class="picks">${imgs}</div>
    <div id="steer-result"></div>
    ${s.diffusion ? `<h3>Generated images</h3>
    <p class="muted">The text-to-image model's own SAE, on its text encoder (${s.diffusion_latents} latents; not the LLaVA's): the edit applies to the prompt's tokens (Olson et al.).</p>
    <form id="diff-form" class="controls" novalidate>
      <label>latent of the text-encoder SAE <input id="diff-latent" type="number" min="0" max="${s.diffusion_latents - 1}" step="1" value="${esc(params.get("dlatent") ?? (s.diffusion_suggested[0] ? s.diffusion_suggested[0].latent : 0))}" list="diff-suggested"></label>
      <datalist id="diff-suggested">${s.diffusion_suggested.map((l) => `<option value="${l.latent}">#${l.latent} ${esc(l.name ?? "")}${l.value !== undefined && l.value !== null ? ` (value ${l.value})` : ""}</option>`).join("")}</datalist>
      <label>op <select id="diff-op">${opts(s.ops.includes(params.get("dop")) ? params.get("dop") : "clamp")}</select></label>
      <label>value <input id="diff-value" type="number" step="any" value="${esc(params.get("dvalue") ?? dValue(params.get("dlatent")))}"></label>
      <label>seed <input id="diff-seed" type="number" min="0" step="1" value="${esc(params.get("seed") ?? 0)}"></label>
      <label class="wide">prompt <input id="diff-prompt" type="text" value="${esc(params.get("prompt") ?? "a red circle")}"></label>
      <button type="submit" id="diff-run">Generate</button></form><div id="diff-result"></div>`
    : `<p class="muted" id="diff-none">Diffusion steering: not available in this server.</p>`}
  </section>`;
  const cur = () => Object.fromEntries(hashParams().params);
  const keep = (ch) => replaceHash("/steer", { ...cur(), ...ch, sae: undefined });
  if ($("#steer-browse")) {
    const browse = () => { $("#steer-browse").href = "#" + `/latent/${$("#steer-latent").value.trim() || 0}?` + q({ sae: s.steering_sae }); };
    browse();
    $("#steer-latent").addEventListener("input", browse);
  }
  const focus = params.has("dlatent") && !params.has("latent") ? $("#diff-form") : null;
  if (focus) { focus.scrollIntoView(); $("#diff-latent").focus(); }
  $("#steer-inspect-run").addEventListener("click", async () => {
    const out = $("#steer-inspect");
    const f = numField("#steer-latent");
    if (f === null) { showError("give a latent to inspect"); return; }
    out.innerHTML = '<p class="muted">computing the steering SAE\'s latents on the served images…</p>';
    try {
      const d = await getJSON(api(`steer/latent/${f}`));
      const cards = d.top.map((im) => `<figure class="card"><img class="img" src="${api(`image/${im.image}.png`)}" alt="image ${im.image}"><figcaption>#${im.image} · ${fmt(im.value, 2)}</figcaption></figure>`).join("");
      out.innerHTML = `<h3 id="steer-inspect-title">Steering latent #${d.latent}${d.name ? " " + esc(d.name) : ""}</h3>
        <p class="muted">fires on ${d.fires_on} of ${d.n_images} served images (mean over the patch tokens at ${esc(d.hook)}, as the steering experiment ranks latents); its top images:</p>
        <div class="grid" id="steer-inspect-images">${cards || '<p class="muted">it fires on none of them</p>'}</div>`;
    } catch (e) { out.innerHTML = ""; showError(e.message); }
  });
  $("#steer-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = $("#steer-result");
    const image = Number($('input[name="steer-image"]:checked').value);
    const latent = latentField("#steer-latent", s.n_latents, `steering SAE (${s.n_latents} latents)`);
    if (latent === null) return;
    const edit = { latent, op: $("#steer-op").value, value: numField("#steer-value") };
    keep({ latent: $("#steer-latent").value, op: edit.op, value: $("#steer-value").value, image });
    out.innerHTML = '<p class="muted">asking…</p>';
    try {
      const r = await getJSON(api("steer"), { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ ...edit, image, question: $("#steer-question").value }) });
      const changed = r.steered !== r.unsteered;
      out.innerHTML = `<table class="answers"><tr><th>unsteered</th><td id="answer-unsteered">${esc(r.unsteered)}</td></tr>
        <tr><th id="edit-label">${editText(r)}</th><td id="answer-steered">${esc(r.steered)}</td></tr></table>
        <p id="answer-changed" class="${changed ? "changed" : "muted"}">${changed ? "the answer changed" : "the answer did not change"}</p>`;
    } catch (e) { out.innerHTML = ""; showError(e.message); }
  });
  if ($("#diff-form")) $("#diff-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = $("#diff-result");
    const latent = latentField("#diff-latent", s.diffusion_latents, `text-encoder SAE (${s.diffusion_latents} latents; not the LLaVA's)`);
    if (latent === null) return;
    const body = { latent, op: $("#diff-op").value, value: numField("#diff-value"),
      seed: numField("#diff-seed") ?? 0, prompt: $("#diff-prompt").value };
    keep({ dlatent: $("#diff-latent").value, dop: body.op, dvalue: $("#diff-value").value, seed: $("#diff-seed").value, prompt: body.prompt });
    out.innerHTML = '<p class="muted">generating…</p>';
    try {
      const r = await getJSON(api("steer/diffusion"), { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body) });
      out.innerHTML = `<div class="row"><figure class="card"><img id="diff-unsteered" src="${r.unsteered}" alt="unsteered"><figcaption>unsteered</figcaption></figure>
        <figure class="card"><img id="diff-steered" src="${r.steered}" alt="steered"><figcaption>${editText(r)} · seed ${r.seed}</figcaption></figure></div>`;
    } catch (e) { out.innerHTML = ""; showError(e.message); }
  });
}

// -- router ---------------------------------------------------------------------------------
async function route() {
  const { path, params } = hashParams();
  const want = params.get("sae");
  if (want && want !== state.sae) {
    try { await loadInfo(want); } catch (e) {
      showError(`${e.message}; showing ${state.sae} instead`);
    }
  }
  if (want !== state.sae) {  // the URL always names the SAE shown
    replaceHash(path, { ...Object.fromEntries(params), sae: undefined });
  }
  document.querySelectorAll("nav a").forEach((a) => a.classList.remove("on"));
  $("#nav-table").href = link("/");
  $("#nav-upload").href = link("/upload");
  $("#nav-steer").href = link("/steer");
  $("#nav-concepts").href = link("/search");
  try {
    let m;
    if ((m = path.match(/^\/latent\/(\d+)$/))) await renderLatent(Number(m[1]));
    else if (path === "/upload") { $("#nav-upload").classList.add("on"); renderUpload(); }
    else if (path === "/steer") { $("#nav-steer").classList.add("on"); await renderSteer(params); }
    else if (path === "/search") { $("#nav-concepts").classList.add("on"); await renderConceptSearch(params); }
    else {
      $("#nav-table").classList.add("on");
      try { await renderTable(params); } catch (e) {
        // a bad table parameter in a hand-edited or old link: say so, show the default table
        if ([...params.keys()].some((k) => k !== "sae")) { showError(`${e.message}; showing the default table`); replaceHash("/", {}); await renderTable(new URLSearchParams()); }
        else throw e;
      }
    }
    document.body.dataset.view = path;
  } catch (e) {
    setTitle("error");
    view().innerHTML = `<p class="error-line">error: ${esc(e.message)}</p>`;
  }
}

async function loadInfo(sae) {
  const info = await getJSON("/api/info?" + q({ sae }));
  state.info = info;
  state.sae = info.sae;
  const sel = $("#sae-select");
  sel.innerHTML = info.saes.map((s) => `<option ${s === state.sae ? "selected" : ""}>${esc(s)}</option>`).join("");
  const b = $("#banner");
  b.textContent = info.warning ? "warning: " + info.warning : "";
  b.hidden = !info.warning;
  $("#sae-info").textContent = `${info.arch} · ${info.n_latents} latents · ${info.n_images} images · ${info.hook} (${info.tokens})`;
}

async function start() {
  await loadInfo(hashParams().params.get("sae") || null).catch(() => loadInfo(null));
  $("#sae-select").addEventListener("change", (ev) => {
    // another SAE: the same view, its own state reset (latent indices do not carry over)
    const { path } = hashParams();
    location.hash = (path.startsWith("/latent/") ? "/" : path) + "?" + q({ sae: ev.target.value });
  });
  window.addEventListener("hashchange", route);
  await route();
}
start().catch((e) => showError(e.message));
