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
from vsae.eval.topimages import jaccard_pair_counts, top_images

PROBE_TRAIN_ROWS = 3000
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
    pur = top_image_purity(top.indices_Fk, top.excluded_F,
                           {a: tables_test[a] for a in tables_test if a != "path"})
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
    words, word_emb_WD: the naming vocabulary and its CLIP text embeddings.
    """

    sim_emb_ND: np.ndarray
    clip_emb_ND: np.ndarray
    depth_CC: np.ndarray
    words: list[str]
    word_emb_WD: np.ndarray


def eval_inputs(stores, taxonomy, clip_dir: str) -> EvalInputs:
    from vsae.world import CLASSES

    words, word_emb = text_embeddings(clip_dir)
    return EvalInputs(stores["test"]["sim"][:].numpy(), stores["test"]["embed"][:].numpy(),
                      lca_depth_matrix(taxonomy, list(CLASSES)), words, word_emb)


def analyse_raw(hook: str, stores, tables, cfg: DemoConfig, ti: EvalInputs) -> dict[str, Any]:
    x = stores["test"][hook][:].numpy()
    top = top_images(x, k=cfg.top_k)
    res = unit_features(x, top, tables["test"], ti.sim_emb_ND)
    res["probe"] = probe(hook, stores, tables)
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
    # names from the CLIP text tower, checked against the ground truth of the top images
    named = name_latents(top.indices_Fk, top.excluded_F, ti.clip_emb_ND, ti.word_emb_WD, ti.words)
    res["names"] = {**named, **name_agreement_attributes(named["names"], top, tables["test"], cfg.seed)}
    # probes (Olson et al.) for the SAEs of the featured expansion (they are the slow part)
    if e == cfg.featured_sae[2]:
        res["probe"] = probe(hook, stores, tables, sae)
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
    """A latent's name agrees when it is the most common value, among its top images, of the
    attribute the word belongs to; the baseline gives every named latent a random word instead."""
    from vsae.world import attribute_vocab

    vocab = {w: a for a in NAME_ATTRIBUTES for w in attribute_vocab(a)}
    words = list(vocab)

    def agrees(f: int, word: str) -> bool:
        a = vocab[word]
        rows = top.indices_Fk[f][top.indices_Fk[f] >= 0]
        codes = table[a][rows]
        return attribute_vocab(a)[np.bincount(codes).argmax()] == word

    rng = np.random.default_rng(seed)
    named = [(f, w) for f, w in enumerate(names) if w is not None]
    agree = sum(agrees(f, w) for f, w in named)
    base = sum(agrees(f, words[rng.integers(len(words))]) for f, _ in named)
    n = len(named)
    return {
        "n_named": n,
        "agreement": agree / n if n else float("nan"),
        "random_word_agreement": base / n if n else float("nan"),
    }


def probe(hook: str, stores, tables, sae=None) -> dict[str, float]:
    """Shape probe (Olson et al.) on raw activations (`sae` None) or on SAE latents: trained on the
    train split, accuracy on test and on the shifted splits."""

    def split(name: str):
        x, y = stores[name][hook][:], tables[name][PROBE_LABEL]
        if name == "train":
            x, y = x[:PROBE_TRAIN_ROWS], y[:PROBE_TRAIN_ROWS]
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
