"""The demo's measurements: every metric of the two papers, for each SAE and for the raw neurons."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from vsae.demo.demo_config import DemoConfig, RunKey, Stores, Tables
from vsae.demo.hierarchy_evidence import top_level_baselines
from vsae.demo.pipeline import NAME_ATTRIBUTES, SHIFTED
from vsae.eval._arrays import chunks_of
from vsae.eval.class_hierarchy import ClassHierarchy, from_paths
from vsae.eval.hierarchy import depth_per_group, depth_trend, latent_lca_depths, lca_depth_matrix
from vsae.eval.monosemanticity import MSResult, monosemanticity_score_streaming, summarize_ms
from vsae.eval.naming import attribute_name_agreement, encode_words, name_latents
from vsae.eval.ood import ood_report, ood_scores, roc_curve
from vsae.eval.probe import ProbeConfig, probe_correct, select_c
from vsae.eval.purity import top_image_purity
from vsae.eval.recon import reconstruction_metrics
from vsae.eval.sampling import describe_sample, spread_sample
from vsae.eval.topimages import TopImages, jaccard_pair_counts, top_images
from vsae.sae import SAE
from vsae.sae.batched import iter_encode
from vsae.world import CLASSES, COLOURS, attribute_vocab, colour_paths

PROBE_TRAIN_ROWS = 3000  # a seeded sample spanning the (class-ordered) train store, never its first rows
PROBE_LABEL = "shape"


def _ms(acts_NF: np.ndarray, emb_ND: np.ndarray) -> MSResult:
    return monosemanticity_score_streaming(chunks_of(acts_NF, 4096), emb_ND)


def _encode(sae: SAE, x_Nd: torch.Tensor, batch: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    bs = list(iter_encode(sae, x_Nd, batch, decode=True))
    return torch.cat([b.z for b in bs]), torch.cat([b.x_hat for b in bs if b.x_hat is not None])


@dataclass(frozen=True)
class UnitAnalysis:
    """What the demo measured on one set of units (an SAE's latents or the raw neurons) on the
    test split; `to_json()` is its entry of results.json["layers"] (per-unit arrays stay out).

    Attributes
    ----------
    ms: the MS of every unit (Pach et al.).
    top: the top images of every unit.
    uniqueness: `jaccard_pair_counts` of the top-image sets.
    purity: `top_image_purity` over the world's attributes.
    probe: shape-probe accuracy per split (Olson et al.); None when not probed.
    recon: reconstruction metrics (SAEs only).
    depth_per_group, depth_per_group_colour: mean LCA depth per Matryoshka group in the class and
        colour taxonomies (SAEs only).
    dead_per_group: latents per group that never fire on the test split (SAEs only).
    grouping_baseline: per taxonomy, its top level's share of the variance of the SAE's test-split
        reconstruction vs random groupings of the same sizes (Matryoshka SAEs only;
        `vsae.demo.hierarchy_evidence.top_level_baselines`).
    depth_trend: per taxonomy ("class", "colour"), last minus first group's mean depth with its
        bootstrap interval (`vsae.eval.hierarchy.depth_trend`; SAEs only).
    names: latent names and their agreement with the ground truth (SAEs only).
    ood: OOD-detection report per shifted split (SAEs only).
    roc: the recon-error ROC curve per shifted split (SAEs only; for the report's plot).
    probe_run: the probe with its per-image outcomes (not in results.json; paired with the raw
        probe's by `vsae.demo.probe_shift`).
    """

    ms: MSResult
    top: TopImages
    uniqueness: dict[str, Any]
    purity: dict[str, Any]
    probe: dict[str, float] | None = None
    recon: dict[str, Any] | None = None
    depth_per_group: list[dict[str, Any]] | None = None
    depth_per_group_colour: list[dict[str, Any]] | None = None
    grouping_baseline: dict[str, Any] | None = None
    depth_trend: dict[str, Any] | None = None
    dead_per_group: list[int] | None = None
    names: dict[str, Any] | None = None
    ood: dict[str, Any] | None = None
    roc: dict[str, Any] | None = None
    probe_run: ProbeRun | None = None

    @property
    def ms_summary(self) -> dict[str, Any]:
        """`summarize_ms` of the units' MS."""
        return summarize_ms(self.ms)

    def excluded(self) -> dict[str, Any]:
        """Which units the top-image analyses leave out, and why (the MS mean keeps every live unit)."""
        ms = self.ms.scores_F
        live_out = self.top.excluded_F & ~np.isnan(ms)
        return {
            "k": int(self.top.indices_Fk.shape[1]),
            "rule": "left out of top-image grids, uniqueness, hierarchy, purity and names: fewer than k firing "
            "test images (k-th highest activation 0); the MS mean includes them",
            "n_excluded_live": int(live_out.sum()),
            "n_never_fire": int(np.isnan(ms).sum()),
            "excluded_live": [[int(f), float(ms[f])] for f in np.flatnonzero(live_out)],
        }

    def to_json(self) -> dict[str, Any]:
        """The JSON part of the analysis (results.json["layers"][hook]["raw"] or [...]["saes"][run])."""
        p = self.purity
        out: dict[str, Any] = {
            "ms": self.ms_summary,
            "ms_per_latent": self.ms.scores_F,
            "uniqueness": self.uniqueness,
            "purity": {k: p[k] for k in ("n_scored", "pure_fraction", "mean_purity")},
            "top_images": self.excluded(),
        }
        optional = {
            "recon": self.recon,
            "depth_per_group": self.depth_per_group,
            "depth_per_group_colour": self.depth_per_group_colour,
            "dead_per_group": self.dead_per_group,
            "grouping_baseline": self.grouping_baseline,
            "depth_trend": self.depth_trend,
            "probe": self.probe,
            "ood": self.ood,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        if self.names is not None:
            n = self.names
            keys = (
                "n_named",
                "n_agree",
                "agreement",
                "n_not_purest",
                "n_wrong_value",
                "random_word_agreement",
            )
            out["names"] = {
                **{k: n[k] for k in keys},
                "per_latent": n["names"],
                "match_scores": n["scores"],
                "verdict_per_latent": n["verdict_F"],
            }
        return out


def unit_features(
    acts_NF: np.ndarray, top: TopImages, tables_test: dict[str, np.ndarray], emb_ND: np.ndarray
) -> UnitAnalysis:
    """What the papers measure on any set of units (SAE latents or raw neurons) on the test split."""
    pur = top_image_purity(
        top.indices_Fk, top.excluded_F, {a: tables_test[a] for a in tables_test if a != "path"}
    )
    return UnitAnalysis(ms=_ms(acts_NF, emb_ND), top=top, uniqueness=jaccard_pair_counts(top), purity=pur)


@dataclass(frozen=True)
class EvalInputs:
    """What every analysis of the test split reads, loaded once per run.

    sim_emb_ND: similarity-encoder embeddings of the test images (MS).
    clip_emb_ND: the CLIP `embed` of the test images (latent naming).
    depth_CC: LCA depth between the world's classes in the class taxonomy (hierarchy).
    colour_depth_CC: LCA depth between the world's colours in its colour taxonomy
        (family -> colour), the second taxonomy the hierarchy is measured in.
    words, word_emb_WD: the naming vocabulary and its CLIP text embeddings.
    """

    sim_emb_ND: np.ndarray
    clip_emb_ND: np.ndarray
    depth_CC: np.ndarray
    colour_depth_CC: np.ndarray
    words: list[str]
    word_emb_WD: np.ndarray


def eval_inputs(stores: Stores, taxonomy: ClassHierarchy, clip_dir: str) -> EvalInputs:
    """Load the test-split embeddings, class depth matrices and naming vocabulary once."""
    words, word_emb = text_embeddings(clip_dir)
    colour_depth = lca_depth_matrix(from_paths(colour_paths(), "world colour taxonomy"), list(COLOURS))
    return EvalInputs(
        stores["test"]["sim"][:].numpy(),
        stores["test"]["embed"][:].numpy(),
        lca_depth_matrix(taxonomy, list(CLASSES)),
        colour_depth,
        words,
        word_emb,
    )


def analyse_raw(hook: str, stores: Stores, tables: Tables, cfg: DemoConfig, ti: EvalInputs) -> UnitAnalysis:
    """The analysis of the raw neurons at ``hook``."""
    x = stores["test"][hook][:].numpy()
    top = top_images(x, k=cfg.top_k)
    res = unit_features(x, top, tables["test"], ti.sim_emb_ND)
    pr = probe(hook, stores, tables, seed=cfg.seed)
    return dataclasses.replace(res, probe=pr.accuracy, probe_run=pr)


def analyse_sae(
    key: RunKey, sae: SAE, stores: Stores, tables: Tables, cfg: DemoConfig, ti: EvalInputs
) -> UnitAnalysis:
    """The analysis of one SAE's latents."""
    hook, arch, e = key
    x_test = stores["test"][hook][:]
    z, x_hat = _encode(sae, x_test)
    top = top_images(z.numpy(), k=cfg.top_k)
    res = unit_features(z.numpy(), top, tables["test"], ti.sim_emb_ND)
    recon = reconstruction_metrics(x_test, x_hat, z).summary()
    # hierarchy: LCA depth of the classes of each latent's top images, per Matryoshka group
    depths = latent_lca_depths(top.indices_Fk, top.excluded_F, tables["test"]["class_name"], ti.depth_CC)
    sizes = list(sae.cfg.nested_groups)
    dpg = depth_per_group(depths, sizes)
    # the same in the colour taxonomy (colour family -> colour), and the latents per group that
    # never fire on the test split (they cannot be scored in either taxonomy)
    cdepths = latent_lca_depths(top.indices_Fk, top.excluded_F, tables["test"]["colour"], ti.colour_depth_CC)
    dpg_colour = depth_per_group(cdepths, sizes)
    baseline = top_level_baselines(x_hat.numpy(), tables["test"], cfg.seed) if arch == "matryoshka" else None
    fires = np.asarray((z > 0).sum(0)).ravel()
    ends = np.cumsum(sizes)
    dead = [int((fires[a:b] == 0).sum()) for a, b in zip([0, *ends[:-1]], ends)]
    # names from the CLIP text tower, checked against the ground truth of the top images
    named = name_latents(top.indices_Fk, top.excluded_F, ti.clip_emb_ND, ti.word_emb_WD, ti.words)
    names = {**named, **name_agreement_attributes(named["names"], top, tables["test"], cfg.seed)}
    # probes (Olson et al.) for the SAEs of the featured expansion (they are the slow part)
    probed = probe(hook, stores, tables, sae, seed=cfg.seed) if e == cfg.featured_sae[2] else None
    # OOD detection scores (Olson et al.)
    ood: dict[str, Any] = {}
    s_in = ood_scores(x_test, x_hat, z)
    roc: dict[str, Any] = {}
    for split in SHIFTED:
        xo = stores[split][hook][:]
        zo, xho = _encode(sae, xo)
        s_ood = ood_scores(xo, xho, zo)
        ood[split] = ood_report(s_in, s_ood)
        roc[split] = roc_curve(s_in["recon_error"], s_ood["recon_error"])
    return dataclasses.replace(
        res,
        probe=None if probed is None else probed.accuracy,
        probe_run=probed,
        recon=recon,
        depth_per_group=dpg,
        depth_per_group_colour=dpg_colour,
        grouping_baseline=baseline,
        depth_trend={
            "class": depth_trend(depths, sizes, seed=cfg.seed),
            "colour": depth_trend(cdepths, sizes, seed=cfg.seed),
        },
        dead_per_group=dead,
        names=names,
        ood=ood,
        roc=roc,
    )


def name_agreement_attributes(
    names: Sequence[str | None], top: TopImages, table: dict[str, np.ndarray], seed: int
) -> dict[str, Any]:
    """A latent's name agrees when its attribute is a purest one of the latent's top images over
    all ground-truth attributes and the word is that attribute's most common value there
    (`vsae.eval.naming.attribute_name_agreement`); the baseline gives every named latent a random
    word instead."""
    word_value = {w: (a, i) for a in NAME_ATTRIBUTES for i, w in enumerate(attribute_vocab(a))}
    words = list(word_value)
    attrs = {a: table[a] for a in table if a != "path"}
    res = attribute_name_agreement(names, top.indices_Fk, attrs, word_value)
    rng = np.random.default_rng(seed)
    random_names = [None if w is None else words[rng.integers(len(words))] for w in names]
    base = attribute_name_agreement(random_names, top.indices_Fk, attrs, word_value)
    return {**res, "random_word_agreement": base["agreement"]}


def probe_train_rows(n_train: int, seed: int) -> np.ndarray:
    """The train rows the probes fit on: `PROBE_TRAIN_ROWS` of them, a seeded sample spanning the
    store (stores are written in class-folder order, so its first rows hold a few classes only)."""
    return spread_sample(n_train, PROBE_TRAIN_ROWS, seed)


def probe_sample(n_train: int, seed: int) -> dict[str, Any]:
    """What results.json records about the probes' train rows."""
    return {"label": PROBE_LABEL, "train_rows": describe_sample(n_train, PROBE_TRAIN_ROWS, seed)}


PROBE_CS = (0.01, 0.1, 1.0, 10.0)  # the C grid each feature set's probe is chosen from on the val split


@dataclass(frozen=True)
class ProbeRun:
    """One feature set's shape probe.

    Attributes
    ----------
    accuracy: accuracy per split ("train", "test", the shifted splits), the chosen "c" and its
        "val" accuracy (results.json's "probe" entry of the units).
    correct: per evaluated split, whether each image is labelled right ([N] bool; the bootstrap
        resamples these, `vsae.demo.probe_shift`).
    val_by_c: validation accuracy of every C tried.
    """

    accuracy: dict[str, float]
    correct: dict[str, np.ndarray]
    val_by_c: dict[float, float]


def probe(
    hook: str,
    stores: Stores,
    tables: Tables,
    sae: SAE | None = None,
    seed: int = 0,
    sample_seed: int | None = None,
    cs: Sequence[float] = PROBE_CS,
) -> ProbeRun:
    """Shape probe (Olson et al.) on raw activations (`sae` None) or on SAE latents: trained on a
    seeded sample spanning the train split (`probe_train_rows`, seed `sample_seed`, default
    `seed`), C chosen from `cs` on the val split (`select_c`; a single C is taken as given),
    accuracy on test and on the shifted splits."""

    def split(name: str) -> tuple[np.ndarray, np.ndarray]:
        x, y = stores[name][hook][:], tables[name][PROBE_LABEL]
        if name == "train":
            rows = probe_train_rows(len(y), seed if sample_seed is None else sample_seed)
            x, y = x[torch.from_numpy(rows)], y[rows]
        with torch.no_grad():
            return (x if sae is None else sae.encode(x)).numpy(), y

    base = ProbeConfig(max_iter=300, seed=seed)
    train = split("train")
    if len(cs) == 1:
        c, val_by_c = float(cs[0]), {float(cs[0]): float("nan")}
    else:
        c, val_by_c = select_c(train, split("val"), cs, base)
    correct = probe_correct(train, {s: split(s) for s in ("train", "test", *SHIFTED)}, replace(base, c=c))
    acc = {s: float(v.mean()) for s, v in correct.items()}
    return ProbeRun(
        {**acc, "val": val_by_c[c], "c": c}, {s: correct[s] for s in ("test", *SHIFTED)}, val_by_c
    )


def text_embeddings(clip_dir: str) -> tuple[list[str], np.ndarray]:
    """The naming vocabulary (the world's concept words) embedded by the CLIP text tower."""
    from vsae.models import load  # loads transformers: only for the text tower

    words = [w for a in NAME_ATTRIBUTES for w in attribute_vocab(a)]
    return words, encode_words(load(clip_dir, tower="text"), words)
