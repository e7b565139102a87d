"""Shared vision/language features inside a multimodal LLM (Olson et al.; the project's definitions).

An SAE trained on a LLaVA language model's residual stream, fed image-token rows and text-token
rows (`vsae extract-mllm`), is scored per latent f (docs/shared.md, METRICS.md):

- ``d_img(f)``, ``d_txt(f)``: fraction of image-token / text-token rows where ``z_f > 0``;
- ``r(f) = d_img / (d_img + d_txt)`` (undefined for dead latents); f is *shared* when
  ``0.2 <= r <= 0.8`` (the frequency-ratio rule of public LLaVA-NeXT SAE work);
  ``shared_fraction`` = shared / live latents;
- ground truth (a world with attribute labels): the *text value* of f is the (attribute, value)
  named most often by the words at its top-k text tokens; its *image value* is the value of that
  attribute most common among the images of its top-k image tokens (one count per token). Ties go
  to the value met first in descending activation order. ``agreement`` = fraction of scored shared
  latents (both sides defined) whose two values are equal. ``random_agreement``: the same with the
  text side of each latent replaced by that of another scored shared latent drawn uniformly at
  random (seeded), averaged over `n_draws` draws: what agreement two unrelated latents reach.
  ``p_value``: one-sided binomial test of the agreeing count against ``random_agreement``.
- ``selectivity`` (with ground truth; the test the demo's verdict uses): shared = concept-selective
  in both modalities, against a mismatched-value baseline, with a planted positive control and
  the minimum detectable rate (`vsae.eval.selectivity`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from scipy.stats import binomtest

from vsae.errors import VsaeError
from vsae.eval.attributes import image_attributes
from vsae.eval.eval_config import DEFAULT_ATTRIBUTES as DEFAULT_ATTRIBUTES  # torch-free: the CLI's options
from vsae.eval.eval_config import SharedConfig as SharedConfig
from vsae.eval.plots import pyplot, save_figure
from vsae.eval.selectivity import layer_selectivity, next_word
from vsae.eval.shared_precondition import raw_precondition
from vsae.eval.write_json import write_json
from vsae.sae import load as load_sae
from vsae.sae.batched import iter_encode
from vsae.shapes import Array, Bool, Float, Float64, Int
from vsae.store import ActivationStore
from vsae.store.columns import has_column, read_column
from vsae.store.safe_io import writes_to

SHARED_RANGE = (0.2, 0.8)
IMAGE, TEXT = 0, 1
TEACHER = 2  # teacher-forced text rows (store column text_kind == 1), kept apart from TEXT
TEXT_KINDS = {TEXT: "caption", TEACHER: "teacher-forced"}


# -- densities and the modality ratio -------------------------------------------------------------
def modality_densities(
    chunks: Iterable[tuple[Any, np.ndarray]], n_latents: int
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(d_img [F], d_txt [F], image rows, text rows) from (z [n, F], modality [n]) chunks."""
    fire = np.zeros((2, n_latents), np.int64)
    rows = np.zeros(2, np.int64)
    for z, mod in chunks:
        z = torch.as_tensor(z)
        mod_t = torch.as_tensor(np.asarray(mod))
        for m in (IMAGE, TEXT):
            sel = mod_t == m
            rows[m] += int(sel.sum())
            fire[m] += (z[sel] > 0).sum(0).numpy()
    if rows.min() == 0:
        missing = "image" if rows[IMAGE] == 0 else "text"
        raise VsaeError(
            f"the store holds no {missing}-token rows; extract both modalities (vsae extract-mllm)"
        )
    return fire[IMAGE] / rows[IMAGE], fire[TEXT] / rows[TEXT], int(rows[IMAGE]), int(rows[TEXT])


def modality_ratio(
    d_img: Float[np.ndarray, " F"], d_txt: Float[np.ndarray, " F"]
) -> Float64[np.ndarray, " F"]:
    """r = d_img / (d_img + d_txt) per latent; NaN for latents that never fire (dead)."""
    tot = np.asarray(d_img, np.float64) + np.asarray(d_txt, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, np.asarray(d_img, np.float64) / np.where(tot > 0, tot, 1), np.nan)


def shared_mask(
    r: Float[np.ndarray, " F"], lo: float = SHARED_RANGE[0], hi: float = SHARED_RANGE[1]
) -> Bool[np.ndarray, " F"]:
    """Latents with lo <= r <= hi (dead latents are never shared)."""
    r = np.asarray(r)
    return ~np.isnan(r) & (r >= lo) & (r <= hi)


def ratio_summary(r: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Counts of live / shared / image-only-leaning / text-leaning latents and the histogram of r."""
    live = ~np.isnan(r)
    shared = shared_mask(r)
    counts, edges = np.histogram(r[live], bins=bins, range=(0.0, 1.0))
    n_live = int(live.sum())
    return {
        "n_latents": int(len(r)),
        "n_live": n_live,
        "n_shared": int(shared.sum()),
        "shared_fraction": float(shared.sum() / n_live) if n_live else float("nan"),
        "n_image_leaning": int((r[live] > SHARED_RANGE[1]).sum()),
        "n_text_leaning": int((r[live] < SHARED_RANGE[0]).sum()),
        "ratio_histogram": {"edges": edges.round(6).tolist(), "counts": counts.tolist()},
    }


# -- top tokens per latent --------------------------------------------------------------------------
class TopRows:
    """Streaming top-k rows per latent (only rows where the latent fires, z > 0)."""

    def __init__(self, n_latents: int, k: int) -> None:
        self.k = k
        self.values = torch.full((n_latents, k), -1.0)
        self.rows = torch.full((n_latents, k), -1, dtype=torch.long)

    def update(self, z_NF: Float[Array, "N F"], row_ids_N: Int[Array, " N"]) -> None:
        """Add the latents of N rows with their row ids."""
        if len(row_ids_N) == 0:
            return
        z = torch.as_tensor(z_NF, dtype=torch.float32).T  # [F, N]
        ids = torch.as_tensor(np.asarray(row_ids_N), dtype=torch.long).expand(z.shape[0], -1)
        z = torch.where(z > 0, z, torch.full_like(z, -1.0))
        vals = torch.cat([self.values, z], 1)
        rows = torch.cat([self.rows, ids], 1)
        # Stable: among equal values the earlier row (smaller id, already kept first) wins.
        order = torch.sort(vals, dim=1, descending=True, stable=True).indices[:, : self.k]
        self.values = torch.gather(vals, 1, order)
        self.rows = torch.where(torch.gather(vals, 1, order) > 0, torch.gather(rows, 1, order), -1)

    def result(self) -> list[np.ndarray]:
        """Per latent, its top rows in descending activation order (fewer than k if it fired less)."""
        return [r[r >= 0].numpy() for r in self.rows]


# -- ground truth ---------------------------------------------------------------------------------
def word_of(token: str) -> str:
    """A vocabulary token as a plain lower-case word (SentencePiece '▁', BPE 'Ġ', WordPiece '##' dropped)."""
    t = token
    for p in ("▁", "Ġ", "##"):
        t = t.replace(p, "")
    return t.strip().lower()


def word_lexicon(values: dict[str, Sequence[str]]) -> dict[str, tuple[str, str]]:
    """word -> (attribute, value) for single-word values that name exactly one attribute."""
    seen: dict[str, list[tuple[str, str]]] = {}
    for attr, vals in values.items():
        for v in dict.fromkeys(str(x) for x in vals):
            w = v.lower()
            if w and " " not in w:
                seen.setdefault(w, []).append((attr, v))
    return {w: pairs[0] for w, pairs in seen.items() if len(pairs) == 1}


def _mode(values: Sequence[Any]) -> Any:
    """Most common value; ties go to the one met first. None for an empty sequence."""
    counts: dict[Any, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    best = None
    for v in counts:  # insertion order = first occurrence
        if best is None or counts[v] > counts[best]:
            best = v
    return best


def text_value(words: Sequence[str], lexicon: dict[str, tuple[str, str]]) -> tuple[str, str] | None:
    """The (attribute, value) named most often by `words` (a latent's top text tokens, best first)."""
    return _mode([lexicon[w] for w in words if w in lexicon])


def image_value(images: np.ndarray, attribute: str, table: dict[str, np.ndarray]) -> str | None:
    """The value of `attribute` most common among `images` (image indices, best first, repeats counted)."""
    col = table[attribute]
    return _mode([col[i] for i in images if col[i] is not None])


def agreement(
    top_images: Sequence[np.ndarray],
    text_values: Sequence[tuple[str, str] | None],
    table: dict[str, np.ndarray],
    seed: int = 0,
    n_draws: int = 100,
) -> dict[str, Any]:
    """Agreement of image and text values over latents (see the module docstring) and its random baseline.

    top_images: per latent, the image index of each of its top image tokens (best first).
    text_values: per latent, its text value or None.
    table: attribute -> [N images] object array of values (None where unknown).
    """
    known = {i: tv for i, (im, tv) in enumerate(zip(top_images, text_values)) if tv is not None and len(im)}
    scored = list(known)
    per: list[dict[str, Any]] = []
    for i in scored:
        attr, val = known[i]
        iv = image_value(top_images[i], attr, table)
        per.append(
            {"index": i, "text_value": f"{attr}={val}", "image_value": f"{attr}={iv}", "agree": iv == val}
        )
    agree = float(np.mean([p["agree"] for p in per])) if per else float("nan")
    rand = float("nan")
    if len(scored) >= 2:
        rng = np.random.default_rng(seed)
        cache: dict[tuple[int, str], str | None] = {}
        hits = []
        for _ in range(n_draws):
            for a, i in enumerate(scored):
                b = int(rng.integers(len(scored) - 1))
                g = scored[b + (b >= a)]  # uniform over the other scored latents
                attr, val = known[g]
                key = (i, attr)
                if key not in cache:
                    cache[key] = image_value(top_images[i], attr, table)
                hits.append(cache[key] == val)
        rand = float(np.mean(hits))
    return {
        "n_scored": len(scored),
        "agreement": agree,
        "random_agreement": rand,
        "p_value": agreement_p_value(sum(bool(p["agree"]) for p in per), len(per), rand),
        "per_latent": per,
    }


def agreement_p_value(n_agree: int, n_scored: int, random_agreement: float) -> float:
    """One-sided binomial test: P(at least `n_agree` of `n_scored` agree) if each agreed with
    probability `random_agreement` (NaN when undefined)."""
    if n_scored == 0 or not np.isfinite(random_agreement):
        return float("nan")
    return float(
        binomtest(int(n_agree), int(n_scored), float(random_agreement), alternative="greater").pvalue
    )


# -- a store + an SAE -----------------------------------------------------------------------------
def selectivity_by_kind(
    store: ActivationStore,
    mod: np.ndarray,
    kept: dict[int, list[np.ndarray]],
    tid: np.ndarray,
    vocab: dict[str, str],
    table: Any,
    lex: Any,
    cfg: SharedConfig,
    phrases: Mapping[str, tuple[str, str]] | None,
) -> dict[str, Any]:
    """Per text kind (caption alone, teacher-forced): the raw-stream precondition, the shared latents
    by selectivity in both modalities, and the state they give ("not testable here" when the raw
    stream does not carry the attribute from image rows to text rows)."""
    rows = {k: np.flatnonzero(mod == k) for k in (IMAGE, TEXT, TEACHER)}
    z_img = np.concatenate(kept[IMAGE])
    img_of = store.image_index[rows[IMAGE]]
    rng = np.random.default_rng([cfg.seed, 23])
    probe_img = np.sort(
        rng.choice(rows[IMAGE].size, min(cfg.probe_rows, rows[IMAGE].size), replace=False)
    )
    x_img = store[rows[IMAGE][probe_img]].float().numpy()
    by_kind: dict[str, Any] = {}
    text_in: dict[str, tuple[np.ndarray, list[str]]] = {}
    for k, kind in TEXT_KINDS.items():
        if rows[k].size == 0:
            continue
        words_k = [word_of(vocab.get(str(int(t)), "")) for t in tid[rows[k]]]
        by_kind[kind] = layer_selectivity(
            z_img,
            img_of,
            np.concatenate(kept[k]),
            store.image_index[rows[k]],
            store.token_index[rows[k]],
            words_k,
            table,
            lex,
            cfg.auroc,
            cfg.min_fires,
            cfg.alpha,
            cfg.seed,
            phrases,
        )
        nxt = next_word(store.image_index[rows[k]], store.token_index[rows[k]], words_k)
        text_in[kind] = (store[rows[k]].float().numpy(), nxt)
    pres = raw_precondition(x_img, img_of[probe_img], text_in, table, lex, cfg.probe_c, cfg.seed)
    for kind, sel in list(by_kind.items()):
        pre = pres[kind]
        state = (
            "not testable here"
            if not pre["holds"]
            else ("shared latents found" if sel["found"] and sel["control"]["found"] else "none found")
        )
        by_kind[kind] = {"state": state, "precondition": pre, "selectivity": sel}
    return by_kind


def shared_layer(
    acts: str | Path,
    sae_path: str | Path,
    cfg: SharedConfig = SharedConfig(),
    attributes_file: str | Path | None = None,
    progress: bool = False,
    phrases: Mapping[str, tuple[str, str]] | None = None,
) -> SharedLayer:
    """Densities, ratios, shared fraction, ground-truth agreement and, with ground truth, the
    shared latents by selectivity in both modalities (`vsae.eval.selectivity`) for one (store,
    SAE) pair. `phrases`: modifier words -> (attribute, value) they belong to (e.g. "pointed" ->
    shape=star), used for a text row's own word."""
    store = ActivationStore.open(acts)
    if not (has_column(store, "modality") and has_column(store, "token_id")):
        raise VsaeError(
            f"store {acts} has no per-row modality column; extract image and text tokens of a LLaVA's "
            f"language model with `vsae extract-mllm`"
        )
    sae = load_sae(sae_path, device=cfg.device)
    if sae.cfg.d_in != store.d:
        raise VsaeError(
            f"SAE {sae_path} reads width {sae.cfg.d_in}, store {acts} has width {store.d}; pair them by layer"
        )
    # A bad ground-truth file fails before the encoding work.
    attrs = image_attributes(acts, attributes_file, cfg.attributes)
    table = attrs.values if attrs is not None else None
    mod = read_column(store, "modality").astype(np.int8)
    if has_column(store, "text_kind"):  # teacher-forced rows: scored apart, out of the densities
        mod[read_column(store, "text_kind") == 1] = TEACHER
    F = sae.cfg.d_sae
    tops = {IMAGE: TopRows(F, cfg.top_k), TEXT: TopRows(F, cfg.top_k)}
    kept: dict[int, list[np.ndarray]] = {IMAGE: [], TEXT: [], TEACHER: []}  # every row's latents

    def chunks() -> Iterator[tuple[torch.Tensor, np.ndarray]]:
        for b in iter_encode(sae, store, cfg.batch_size, progress=progress):
            a, z = b.start, b.z.float().cpu()
            m = mod[a : a + len(z)]
            for k in (IMAGE, TEXT, TEACHER):
                sel = np.flatnonzero(m == k)
                if k in tops:
                    tops[k].update(z[torch.as_tensor(sel)], a + sel)
                if table is not None and sel.size:
                    kept[k].append(z[torch.as_tensor(sel)].numpy())
            yield z, m

    d_img, d_txt, n_img, n_txt = modality_densities(chunks(), F)
    r = modality_ratio(d_img, d_txt)
    res: dict[str, Any] = {
        "hook": store.provenance.get("hook"),
        "acts": str(acts),
        "sae": str(sae_path),
        "rows": {"image": n_img, "text": n_txt},
        **ratio_summary(r, cfg.bins),
    }
    shared = np.flatnonzero(shared_mask(r))
    if table is None:
        res.update(
            agreement=None,
            random_agreement=None,
            p_value=None,
            n_scored=0,
            note="no attributes.json for these images: ground-truth agreement not computed",
        )
    else:
        vocab = json.loads((Path(acts) / "tokens.json").read_text())
        tid = read_column(store, "token_id")
        lex = word_lexicon({a: [v for v in col if v is not None] for a, col in table.items()})
        top_img = [store.image_index[rows] for rows in (tops[IMAGE].result()[f] for f in shared)]
        words = [
            [word_of(vocab.get(str(int(tid[row])), "")) for row in tops[TEXT].result()[f]] for f in shared
        ]
        ag = agreement(top_img, [text_value(w, lex) for w in words], table, cfg.seed, cfg.n_draws)
        res.update({k: ag[k] for k in ("agreement", "random_agreement", "p_value", "n_scored")})
        res["top_k"] = cfg.top_k
        res["shared_latents"] = [
            {
                "latent": int(shared[p["index"]]),
                "r": float(r[shared[p["index"]]]),
                "d_img": float(d_img[shared[p["index"]]]),
                "d_txt": float(d_txt[shared[p["index"]]]),
                "text_value": p["text_value"],
                "image_value": p["image_value"],
                "agree": bool(p["agree"]),
            }
            for p in ag["per_latent"]
        ]
        by_kind = selectivity_by_kind(store, mod, kept, tid, vocab, table, lex, cfg, phrases)
        res["selectivity"] = (by_kind.get("caption") or next(iter(by_kind.values())))["selectivity"]
        res["by_kind"] = by_kind
    return SharedLayer(res, r)


def plot_ratios(ratios: dict[str, np.ndarray], path: str | Path, bins: int = 20) -> Path:
    """Histogram of the modality ratio r of live latents, one series per layer, shared band shaded."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.axvspan(*SHARED_RANGE, color="#d9ead3", alpha=0.6, label="shared (0.2 <= r <= 0.8)")
    for name, r in ratios.items():
        v = r[~np.isnan(r)]
        ax.hist(v, bins=bins, range=(0, 1), alpha=0.55, label=f"{name} ({v.size} live)")
    ax.set_xlabel("r = d_img / (d_img + d_txt)   (0: text only, 1: image only)")
    ax.set_ylabel("latents")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


@dataclass(frozen=True)
class SharedLayer:
    """One (store, SAE) pair scored by `shared_layer`.

    Attributes
    ----------
    summary: the layer's entry of shared.json (densities, ratio counts, agreement, shared latents).
    r_F: the modality ratio r of every latent (NaN: dead).
    """

    summary: dict[str, Any]
    r_F: np.ndarray


@dataclass(frozen=True)
class SharedReport:
    """`vsae eval shared`: shared vision/language latents per layer (Olson et al.).

    Attributes
    ----------
    config: how the layers were scored.
    layers: layer name (its hook) -> its entry of shared.json.
    ratios: layer name -> the per-latent modality ratios (in the plot, not in shared.json).
    plot: file name of the ratio histogram beside shared.json.
    """

    DEFINITION: ClassVar[str] = (
        "Olson et al. shared vision/language features, project's definitions (docs/shared.md): "
        "shared when 0.2 <= d_img/(d_img+d_txt) <= 0.8; agreement = same attribute value at the top image "
        "tokens' images and the top text tokens' words; random_agreement = the text side taken from a random "
        "other scored shared latent. selectivity (the shared-latents test): a latent is shared for a value when "
        "its AUROC for the value is >= auroc on image units (per-image max) and on text rows (own or next word "
        "names the value), firing on >= min_fires positives in each; tested against the mismatched-value rate; "
        "per text kind (caption alone, teacher-forced after the image), judged only where the raw-stream "
        "precondition holds (a probe trained on image rows reads the value from the text rows that predict it)"
    )

    config: SharedConfig
    layers: dict[str, dict[str, Any]]
    ratios: dict[str, np.ndarray]
    plot: str

    def to_json(self) -> dict[str, Any]:
        """shared.json."""
        return {
            "definition": self.DEFINITION,
            "config": {
                "top_k": self.config.top_k,
                "attributes": list(self.config.attributes),
                "seed": self.config.seed,
                "n_draws": self.config.n_draws,
                "shared_range": list(SHARED_RANGE),
                "auroc": self.config.auroc,
                "min_fires": self.config.min_fires,
                "alpha": self.config.alpha,
                "probe_c": self.config.probe_c,
                "probe_rows": self.config.probe_rows,
            },
            "layers": self.layers,
            "plot": self.plot,
        }


@writes_to("out")
def run_shared(
    pairs: Sequence[tuple[str | Path, str | Path]],
    out: str | Path,
    cfg: SharedConfig = SharedConfig(),
    attributes_file: str | Path | None = None,
    progress: bool = False,
    phrases: Mapping[str, tuple[str, str]] | None = None,
) -> SharedReport:
    """Score each (store, SAE) pair (one per layer); write OUT/shared.json and OUT/shared_ratio.png."""
    if not pairs:
        raise VsaeError("give at least one --acts STORE --sae RUN pair")
    layers: dict[str, dict[str, Any]] = {}
    ratios: dict[str, np.ndarray] = {}
    for acts, sae in pairs:
        one = shared_layer(acts, sae, cfg, attributes_file, progress, phrases)
        name = one.summary["hook"] or Path(acts).name
        if name in layers:
            name = f"{name} ({acts})"
        ratios[name] = one.r_F
        layers[name] = one.summary
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plot = plot_ratios(ratios, out / "shared_ratio.png")
    rep = SharedReport(cfg, layers, ratios, plot.name)
    write_json(out, "shared", rep.to_json())
    return rep
