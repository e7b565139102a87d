"""The demo's measurements: every metric of the two papers, for each SAE and for the raw neurons."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vsae.demo.config import DemoConfig
from vsae.demo.pipeline import NAME_ATTRIBUTES, SHIFTED
from vsae.eval.hierarchy import depth_per_group, latent_lca_depths, lca_depth_matrix
from vsae.eval.monosemanticity import monosemanticity_score_streaming, summarize_ms
from vsae.eval.naming import name_latents
from vsae.eval.ood import ood_report, ood_scores, roc_curve
from vsae.eval.probe import ProbeConfig, probe_accuracy
from vsae.eval.purity import top_image_purity
from vsae.eval.recon import reconstruction_metrics
from vsae.eval.sampling import describe_sample, spread_sample
from vsae.eval.topimages import jaccard_pair_counts, top_images

PROBE_TRAIN_ROWS = 3000  # a seeded sample spanning the (class-ordered) train store, never its first rows
PROBE_LABEL = "shape"


def _ms(acts_NF: np.ndarray, emb_ND: np.ndarray):
    from vsae.eval._arrays import chunks_of

    return monosemanticity_score_streaming(chunks_of(acts_NF, 4096), emb_ND)


def _encode(sae, x_Nd: torch.Tensor, batch: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    zs, xs = [], []
    with torch.no_grad():
        for a in range(0, len(x_Nd), batch):
            z = sae.encode(x_Nd[a : a + batch])
            zs.append(z)
            xs.append(sae.decode(z))
    return torch.cat(zs), torch.cat(xs)


def unit_features(acts_NF: np.ndarray, top, tables_test, emb_ND: np.ndarray) -> dict[str, Any]:
    """What the papers measure on any set of units (SAE latents or raw neurons) on the test split."""
    ms = _ms(acts_NF, emb_ND)
    pur = top_image_purity(
        top.indices_Fk, top.excluded_F, {a: tables_test[a] for a in tables_test if a != "path"}
    )
    return {
        "ms": ms,
        "ms_summary": summarize_ms(ms),
        "top": top,
        "uniqueness": jaccard_pair_counts(top),
        "purity": pur,
    }


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


def eval_inputs(stores, taxonomy, clip_dir: str) -> EvalInputs:
    from vsae.eval.taxonomy import from_paths
    from vsae.world import CLASSES
    from vsae.world.taxonomy import COLOURS, colour_paths

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


def analyse_raw(hook: str, stores, tables, cfg: DemoConfig, ti: EvalInputs) -> dict[str, Any]:
    x = stores["test"][hook][:].numpy()
    top = top_images(x, k=cfg.top_k)
    res = unit_features(x, top, tables["test"], ti.sim_emb_ND)
    res["probe"] = probe(hook, stores, tables, seed=cfg.seed)
    return res


def analyse_sae(key, sae, stores, tables, cfg: DemoConfig, ti: EvalInputs) -> dict[str, Any]:
    hook, arch, e = key
    x_test = stores["test"][hook][:]
    z, x_hat = _encode(sae, x_test)
    top = top_images(z.numpy(), k=cfg.top_k)
    res = unit_features(z.numpy(), top, tables["test"], ti.sim_emb_ND)
    res["recon"] = reconstruction_metrics(x_test, x_hat, z).summary()
    # hierarchy: LCA depth of the classes of each latent's top images, per Matryoshka group
    depths = latent_lca_depths(top.indices_Fk, top.excluded_F, tables["test"]["class_name"], ti.depth_CC)
    sizes = list(sae.cfg.group_sizes) if arch == "matryoshka" else [sae.cfg.d_sae]
    res["depth_per_group"] = depth_per_group(depths, sizes)
    # the same in the colour taxonomy (colour family -> colour), and the latents per group that
    # never fire on the test split (they cannot be scored in either taxonomy)
    cdepths = latent_lca_depths(top.indices_Fk, top.excluded_F, tables["test"]["colour"], ti.colour_depth_CC)
    res["depth_per_group_colour"] = depth_per_group(cdepths, sizes)
    fires = np.asarray((z > 0).sum(0)).ravel()
    ends = np.cumsum(sizes)
    res["dead_per_group"] = [int((fires[a:b] == 0).sum()) for a, b in zip([0, *ends[:-1]], ends)]
    # names from the CLIP text tower, checked against the ground truth of the top images
    named = name_latents(top.indices_Fk, top.excluded_F, ti.clip_emb_ND, ti.word_emb_WD, ti.words)
    res["names"] = {**named, **name_agreement_attributes(named["names"], top, tables["test"], cfg.seed)}
    # probes (Olson et al.) for the SAEs of the featured expansion (they are the slow part)
    if e == cfg.featured_sae[2]:
        res["probe"] = probe(hook, stores, tables, sae, seed=cfg.seed)
    # OOD detection scores (Olson et al.)
    ood = {}
    s_in = ood_scores(x_test, x_hat, z)
    res["roc"] = {}
    for split in SHIFTED:
        xo = stores[split][hook][:]
        zo, xho = _encode(sae, xo)
        s_ood = ood_scores(xo, xho, zo)
        ood[split] = ood_report(s_in, s_ood)
        res["roc"][split] = roc_curve(s_in["recon_error"], s_ood["recon_error"])
    res["ood"] = ood
    return res


def name_agreement_attributes(names, top, table, seed: int) -> dict[str, Any]:
    """A latent's name agrees when its attribute is a purest one of the latent's top images over
    all ground-truth attributes and the word is that attribute's most common value there
    (`vsae.eval.naming.attribute_name_agreement`); the baseline gives every named latent a random
    word instead."""
    from vsae.eval.naming import attribute_name_agreement
    from vsae.world import attribute_vocab

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


def probe(hook: str, stores, tables, sae=None, seed: int = 0) -> dict[str, float]:
    """Shape probe (Olson et al.) on raw activations (`sae` None) or on SAE latents: trained on a
    seeded sample spanning the train split (`probe_train_rows`), accuracy on test and on the
    shifted splits."""

    def split(name: str):
        x, y = stores[name][hook][:], tables[name][PROBE_LABEL]
        if name == "train":
            rows = probe_train_rows(len(y), seed)
            x, y = x[torch.from_numpy(rows)], y[rows]
        with torch.no_grad():
            return (x if sae is None else sae.encode(x)).numpy(), y

    evals = {s: split(s) for s in ("test", *SHIFTED)}
    return probe_accuracy(split("train"), evals, ProbeConfig(max_iter=300))


def text_embeddings(clip_dir: str) -> tuple[list[str], np.ndarray]:
    """The naming vocabulary (the world's concept words) embedded by the CLIP text tower."""
    from vsae.eval.naming import encode_words
    from vsae.models import load
    from vsae.world import attribute_vocab

    words = [w for a in NAME_ATTRIBUTES for w in attribute_vocab(a)]
    return words, encode_words(load(clip_dir, tower="text"), words)
