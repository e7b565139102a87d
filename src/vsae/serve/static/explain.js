// Explanations (`vsae eval explain`) in the browser: the phrase and its detection score on the
// table and latent pages, and the concept search page (#/search?q=...). Uses app.js's helpers.
function explainCell(r) {
  if (!r.explanation) return "";
  return `${esc(r.explanation)} <span class="muted" title="detection AUROC of the judge CLIP">(${fmt(r.explanation_score, 2)})</span>`;
}

function explainBlock(d) {
  const e = d.explanation;
  if (!e) return "";
  return `<p id="latent-explanation" class="explanation">explained as <strong>${esc(e.phrase ?? "–")}</strong>
    <span class="muted">detection AUROC ${fmt(e.detection, 3)} (shuffled phrase ${fmt(e.shuffled_detection, 3)};
    name “${esc(e.name ?? "–")}” ${fmt(e.name_detection, 3)}) · ${esc(e.explainer ?? "")} explainer, judge ${esc(e.judge ?? "")}</span></p>`;
}

async function renderConceptSearch(params) {
  setTitle("Concept search");
  const query = params.get("q") || "";
  view().innerHTML = `<section class="controls">
      <input id="concept-query" type="search" placeholder="a concept, e.g. red" value="${esc(query)}">
      <button id="concept-go">search</button>
      <span class="muted">latents ranked by the judge CLIP's similarity of the query to their explanation and top images</span>
    </section><div id="concept-results">${state.info.has_explanations ? "" : '<p class="muted">this SAE has no explanations: run `vsae eval explain`</p>'}</div>`;
  const go = () => setHash("/search", { q: $("#concept-query").value });
  $("#concept-go").addEventListener("click", go);
  $("#concept-query").addEventListener("keydown", (ev) => { if (ev.key === "Enter") go(); });
  if (!query || !state.info.has_explanations) return;
  const d = await getJSON(api("explain/search", { q: query, k: 20 }));
  $("#concept-results").innerHTML = `<table id="concept-table"><thead><tr><th>latent</th><th>explanation</th><th>score</th><th>phrase cos</th><th>images cos</th><th>detection</th></tr></thead><tbody>
    ${d.results.map((r) => `<tr class="concept-row" data-latent="${r.latent}"><td><a href="${link(`/latent/${r.latent}`)}">#${r.latent}</a></td>
      <td>${esc(r.phrase ?? "")}</td><td class="num">${fmt(r.score, 3)}</td><td class="num">${fmt(r.phrase_cos, 3)}</td>
      <td class="num">${fmt(r.images_cos, 3)}</td><td class="num">${fmt(r.detection, 2)}</td></tr>`).join("")}</tbody></table>`;
}
