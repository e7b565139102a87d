"""One function per `vsae eval` sub-command: read stores / SAEs / files, call the metric functions,
write `<name>.json` (+ PNG figures, + per-latent arrays as .safetensors) into an output directory.
The CLI (`vsae.cli.eval`) is a thin wrapper around these."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from vsae.errors import VsaeError
from vsae.eval import plots
from vsae.eval.results import write_json
from vsae.eval.sampling import describe_sample, spread_sample
from vsae.eval.sources import (
    check_sae_matches,
    image_labels,
    image_view,
    load_array,
    open_rows,
    sae_transform,
    similarity_embeddings,
    similarity_store,
)

PathLike = str | os.PathLike


def _load_sae(path: PathLike | None):
    if path is None:
        return None
    from vsae.sae import load

    return load(path)


def latent_view(acts: PathLike | None, sae_path: PathLike | None, latents: PathLike | None, pooling: str):
    """(per-image view, transform to latents or None, description) for SAE latents given either
    as a sparse latents store (`vsae encode`) or as raw activations + an SAE (encoded on the fly)."""
    if latents is not None:
        rows = open_rows(latents)
        return image_view(rows, pooling), None, {"latents": str(latents)}
    if acts is None or sae_path is None:
        raise VsaeError("give --latents STORE, or --acts STORE with --sae RUN")
    sae = _load_sae(sae_path)
    rows = open_rows(acts)
    check_sae_matches(rows, sae)
    return image_view(rows, pooling), sae_transform(sae), {"acts": str(acts), "sae": str(sae_path)}


# ----------------------------------------------------------------------------- recon
def run_recon(
    acts: PathLike,
    sae_path: PathLike,
    out: PathLike,
    batch_size: int = 4096,
    max_rows: int | None = None,
    progress: bool = True,
    model: str | None = None,
    data: str | None = None,
    split: str | None = None,
    hook: str | None = None,
    n_images: int = 256,
    prompt: str = "a photo of a {}",
    seed: int = 0,
) -> dict[str, Any]:
    """MSE, FVU, L0, dead/dense fractions and firing frequencies of an SAE on a held-out store
    (`max_rows`: a seeded sample of that many rows spanning the store, `vsae.eval.sampling`);
    with `model` and `data`, also the splice effect (`splice_metrics`) at the store's hook."""
    import torch

    from vsae.eval.recon import ReconAccumulator

    sae = _load_sae(sae_path)
    rows = open_rows(acts)
    check_sae_matches(rows, sae)
    n = len(rows)
    keep = spread_sample(n, max_rows, seed)  # never the first rows of a class-ordered store
    acc = ReconAccumulator()
    with torch.no_grad():
        for a in tqdm(range(0, n, batch_size), desc="recon", disable=not progress, leave=False):
            b = min(a + batch_size, n)
            sel = keep[(keep >= a) & (keep < b)] - a
            if sel.size == 0:
                continue
            x = rows.read(a, b)
            x = x[sel] if sel.size < b - a else x
            x = torch.from_numpy(x.toarray() if sp.issparse(x) else np.asarray(x))
            z = sae.encode(x)
            acc.update(x, sae.decode(z), z)
    res = acc.result()
    summary = {
        "acts": str(acts),
        "sae": str(sae_path),
        "rows": describe_sample(n, max_rows, seed),
        **res.summary(),
    }
    if model is not None and data is not None:
        hook = hook or rows.provenance.get("hook")
        if not hook:
            raise VsaeError(f"{acts} does not record its hook; pass --hook")
        summary["splice"] = splice_metrics(
            model, data, sae, hook, split, n_images, prompt=prompt, progress=progress, seed=seed
        )
    write_json(out, "recon", summary)
    plots.firing_frequency(summary["firing_histogram"], Path(out) / "firing_frequency.png")
    return summary


def splice_metrics(
    model: str,
    data: str,
    sae: Any,
    hook: str,
    split: str | None = None,
    n_images: int = 256,
    batch_size: int = 32,
    prompt: str = "a photo of a {}",
    progress: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Downstream effect of splicing decode(encode(x)) at the SAE's hook, on `n_images` images
    (a seeded sample spanning the source, never its first classes): cosine of the final
    embedding to the original and (CLIP) zero-shot accuracy with and without the splice."""
    import dataclasses

    from vsae.data import iter_batches, open_source
    from vsae.eval.naming import encode_words
    from vsae.eval.splice import splice_effect, zero_shot_accuracy
    from vsae.models import load

    lm = load(model)
    source = open_source(data, split)
    pick = spread_sample(len(source), n_images, seed)
    sub = dataclasses.replace(
        source, items=tuple(source.items[i] for i in pick), labels=tuple(source.labels[i] for i in pick)
    )
    batches = [b for b in iter_batches(sub, lm.preprocess, 0, len(sub), batch_size) if b.inputs is not None]
    ids = pick[np.concatenate([b.ids for b in batches])] if batches else np.zeros(0, np.int64)
    eff = splice_effect(lm, hook, sae, tqdm([b.inputs for b in batches], desc="splice", disable=not progress))
    res: dict[str, Any] = {
        "model": model,
        "hook": hook,
        "data": data,
        "n_images": int(ids.size),
        "images": describe_sample(len(source), n_images, seed),
        "embedding_cosine_mean": float(eff["cosine"].mean()),
        "embedding_cosine_min": float(eff["cosine"].min()),
    }
    labels = np.asarray(source.labels)[ids] if len(source.labels) else np.zeros(0)
    res["images"]["classes_covered"] = int(np.unique(labels[labels >= 0]).size)
    if lm.family == "clip" and source.classes and (labels >= 0).all():
        lm_text = load(model, tower="text")
        txt = encode_words(lm_text, [c.replace("_", " ") for c in source.classes], prompt)
        res["zero_shot"] = {
            "prompt": prompt,
            "n_classes": len(source.classes),
            "accuracy_original": zero_shot_accuracy(eff["original"], txt, labels),
            "accuracy_spliced": zero_shot_accuracy(eff["spliced"], txt, labels),
        }
    return res


# ----------------------------------------------------------------------------- MS
def run_ms(
    embeddings: PathLike | None,
    out: PathLike,
    acts: PathLike | None = None,
    sae_path: PathLike | None = None,
    latents: PathLike | None = None,
    pooling: str = "auto",
    raw: bool = True,
    progress: bool = True,
    embed_model: str | None = None,
    embed_cache: PathLike | None = None,
) -> dict[str, Any]:
    """MS of SAE latents and (with the same code) of the raw neurons at the hook (Pach et al.)."""
    from safetensors.numpy import save_file

    from vsae.eval.monosemanticity import monosemanticity_score_streaming, summarize_ms

    if embeddings is None:
        if embed_model is None or acts is None:
            raise VsaeError(
                "give --embeddings, or --embed-model with --acts (the images it was extracted from)"
            )
        embeddings = similarity_store(
            embed_model,
            open_rows(acts),
            embed_cache or Path(out) / "similarity-embeddings",
            progress=progress,
        )
    res: dict[str, Any] = {"embeddings": str(embeddings), "embed_model": embed_model}
    scores: dict[str, np.ndarray] = {}
    kinds = []
    if latents is not None or sae_path is not None:
        view, transform, desc = latent_view(acts, sae_path, latents, pooling)
        kinds.append(("sae", view, transform, desc))
    if acts is not None and raw:
        rv = image_view(open_rows(acts), pooling)
        kinds.append(("raw", rv, None, {"acts": str(acts)}))
    if not kinds:
        raise VsaeError("nothing to score: give --acts (raw neurons) and/or --sae / --latents")
    for name, view, transform, desc in kinds:
        e = similarity_embeddings(embeddings, view.images, view.rows.name, view.rows.provenance)
        r = monosemanticity_score_streaming(view.chunks(transform), e, progress=progress)
        scores[name] = r.scores_F
        res[name] = {**desc, "pooling": view.pooling, **summarize_ms(r)}
    res["per_image_activation"] = {
        k: v["pooling"] for k, v in res.items() if isinstance(v, dict) and "pooling" in v
    }
    Path(out).mkdir(parents=True, exist_ok=True)
    save_file({k: v.astype(np.float64) for k, v in scores.items()}, str(Path(out) / "ms_scores.safetensors"))
    write_json(out, "ms", res)
    plots.ms_histogram(
        {{"sae": "SAE latents", "raw": "raw neurons"}[k]: v for k, v in scores.items()},
        Path(out) / "ms_histogram.png",
    )
    return res


# ----------------------------------------------------------------------------- HAI, uniqueness
def run_top_images(
    out: PathLike,
    acts: PathLike | None = None,
    sae_path: PathLike | None = None,
    latents: PathLike | None = None,
    k: int = 16,
    pooling: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """HAI_k per latent (as image indices of the store) with the worst value."""
    from safetensors.numpy import save_file

    from vsae.eval.topimages import top_images_streaming

    view, transform, desc = latent_view(acts, sae_path, latents, pooling)
    top = top_images_streaming(view.chunks(transform), k=k, progress=progress)
    img = np.where(top.indices_Fk >= 0, view.images[np.clip(top.indices_Fk, 0, None)], -1)
    Path(out).mkdir(parents=True, exist_ok=True)
    save_file(
        {"image_index": img.astype(np.int64), "values": top.values_Fk.astype(np.float64)},
        str(Path(out) / "top_images.safetensors"),
        metadata={"k": str(k), "pooling": view.pooling, "n_images": str(len(view))},
    )
    ex = top.excluded_F
    res = {
        **desc,
        "k": k,
        "pooling": view.pooling,
        "n_images": len(view),
        "n_latents": int(ex.size),
        "n_excluded_worst_zero": int(ex.sum()),
        "worst_value_mean": float(top.worst_F[~ex].mean()) if (~ex).any() else float("nan"),
        "file": "top_images.safetensors",
    }
    write_json(out, "top_images", res)
    return res


def load_top_images(path: PathLike):
    """The `top_images.safetensors` written by `run_top_images` (as a TopImages over image ids)."""
    from safetensors import SafetensorError, safe_open

    from vsae.eval.topimages import TopImages

    p = Path(path)
    p = p / "top_images.safetensors" if p.is_dir() else p
    if not p.is_file():
        raise VsaeError(f"{p} does not exist; run `vsae eval top-images` first")
    try:
        with safe_open(str(p), "numpy") as f:
            meta = f.metadata() or {}
            idx, val = f.get_tensor("image_index"), f.get_tensor("values")
    except (SafetensorError, OSError, ValueError) as e:
        why = (str(e).splitlines() or [type(e).__name__])[0][:120]
        raise VsaeError(
            f"{p} is not a readable top-images file ({why}); run `vsae eval top-images` again"
        ) from None
    return TopImages(indices_Fk=idx, values_Fk=val, n_rows=int(meta.get("n_images", idx.max() + 1)))


def run_uniqueness(top_images: PathLike, out: PathLike) -> dict[str, Any]:
    from vsae.eval.topimages import jaccard_pair_counts

    res = {"top_images": str(top_images), **jaccard_pair_counts(load_top_images(top_images))}
    write_json(out, "uniqueness", res)
    return res


# ----------------------------------------------------------------------------- hierarchy
def load_hierarchy(
    table: PathLike,
    classes: Sequence[str],
    taxonomy: PathLike | None = None,
    inat: bool = False,
    wordnet: PathLike | None = None,
):
    """The class hierarchy: a file, iNaturalist class names, WordNet, or the store's taxonomy.json."""
    from vsae.eval import taxonomy as tx

    if sum(x is not None and x is not False for x in (taxonomy, wordnet)) + bool(inat) > 1:
        raise VsaeError("give one of --taxonomy, --inat, --wordnet")
    if taxonomy is not None:
        return tx.from_file(taxonomy)
    if inat:
        return tx.from_inat_names(classes)
    if wordnet is not None:
        return tx.from_wordnet(classes, wordnet)
    p = Path(table)
    cand = (p if p.is_dir() else p.parent) / "taxonomy.json"
    if cand.is_file():
        return tx.from_file(cand)
    raise VsaeError(f"no taxonomy: {cand} does not exist; pass --taxonomy FILE, --inat or --wordnet")


WORLD_COLOUR = "world-colour"


def _world_colour_labels(table: PathLike, attributes_file: PathLike | None):
    """(colours, colour index per image or -1, the colour taxonomy, the file read)."""
    from vsae.eval.taxonomy import from_paths
    from vsae.world.taxonomy import COLOURS, colour_paths

    values, f = image_attributes(table, attributes_file, required=True)
    if "colour" not in values:
        raise VsaeError(f"{f} has no 'colour' attribute; --taxonomy world-colour needs a world export's")
    index = {c: i for i, c in enumerate(COLOURS)}
    col = values["colour"]
    bad = sorted({v for v in col if v is not None and v not in index})
    if bad:
        raise VsaeError(f"{f}: colours {bad} are not in the world's colour taxonomy {list(COLOURS)}")
    labels = np.array([-1 if v is None else index[v] for v in col], dtype=np.int64)
    return list(COLOURS), labels, from_paths(colour_paths(), "world colour taxonomy"), f


def _group_sizes(n_latents: int, sae_path: PathLike | None, groups: Sequence[float] | None) -> list[int]:
    from vsae.sae import SAEConfig

    if sae_path is not None:
        cfg = _load_sae(sae_path).cfg
        return list(cfg.group_sizes) if cfg.arch == "matryoshka" else [cfg.d_sae]
    if groups:
        return list(
            SAEConfig(arch="matryoshka", d_in=1, d_sae=n_latents, k=1, groups=tuple(groups)).group_sizes
        )
    return [n_latents]


def run_hierarchy(
    top_images: PathLike,
    table: PathLike,
    out: PathLike,
    taxonomy: PathLike | None = None,
    inat: bool = False,
    wordnet: PathLike | None = None,
    sae_path: PathLike | None = None,
    groups: Sequence[float] | None = None,
    attributes_file: PathLike | None = None,
) -> dict[str, Any]:
    """LCA depth per Matryoshka group (Pach et al.) and the ontology figures (project definition).

    `taxonomy="world-colour"`: the shapes world's colour taxonomy (colour family -> colour), each
    image labelled by its `colour` in `attributes_file` (default DATA/attributes.json)."""
    from vsae.eval.hierarchy import depth_per_group, latent_lca_depths, lca_depth_matrix, ontology_report

    top = load_top_images(top_images)
    ids = np.unique(top.indices_Fk[top.indices_Fk >= 0])
    if str(taxonomy) == WORLD_COLOUR:
        if inat or wordnet is not None:
            raise VsaeError("give one of --taxonomy, --inat, --wordnet")
        classes, labels_all, tax, where = _world_colour_labels(table, attributes_file)
    else:
        if attributes_file is not None:
            raise VsaeError("--attributes is read only with --taxonomy world-colour")
        _, classes = image_labels(table, ids)
        from vsae.data import load_table

        labels_all = np.asarray(load_table(table)["labels"], dtype=np.int64)
        tax, where = load_hierarchy(table, classes, taxonomy, inat, wordnet), str(table)
    used = sorted({int(c) for c in labels_all[ids] if c >= 0})
    if ids.size and (labels_all[ids] < 0).any():
        raise VsaeError(f"{int((labels_all[ids] < 0).sum())} top images have no class label in {where}")
    tax.check_classes([classes[c] for c in used], where=f"the image table {table}")
    # restrict to the classes that occur, keeping class indices valid for the label array
    names = [classes[c] if c in set(used) else None for c in range(len(classes))]
    present = [c for c in range(len(classes)) if names[c] is not None]
    remap = np.full(len(classes), -1, dtype=np.int64)
    remap[present] = np.arange(len(present))
    lab = np.where(labels_all >= 0, remap[np.clip(labels_all, 0, None)], -1)
    cls_names = [classes[c] for c in present]
    depth_cc = lca_depth_matrix(tax, cls_names)
    depths = latent_lca_depths(top.indices_Fk, top.excluded_F, lab, depth_cc)
    sizes = _group_sizes(top.indices_Fk.shape[0], sae_path, groups)
    per_group = depth_per_group(depths, sizes)
    onto = ontology_report(top.indices_Fk, top.excluded_F, lab, tax, cls_names)
    res = {
        "top_images": str(top_images),
        "taxonomy": tax.source,
        "n_classes": len(cls_names),
        "depth_per_group": per_group,
        "n_latents_scored": int((depths["rounded"] >= 0).sum()),
        "latent_depth_rounded": depths["rounded"],
        "latent_depth_majority": depths["majority"],
        "ontology": onto,
    }
    write_json(out, "hierarchy", res)
    plots.depth_per_group(per_group, Path(out) / "depth_per_group.png")
    return res


# ----------------------------------------------------------------------------- probes, OOD
def _features(path: PathLike, sae_path: PathLike | None, pooling: str, dense: bool):
    rows = open_rows(path)
    view = image_view(rows, pooling)
    transform = None
    if sae_path is not None:
        sae = _load_sae(sae_path)
        check_sae_matches(rows, sae)
        transform = sae_transform(sae)
    parts = [c for _, c in view.chunks(transform)()]
    if not parts:
        raise VsaeError(f"{path} has no rows")
    x = sp.vstack(parts, format="csr") if sp.issparse(parts[0]) else np.concatenate(parts)
    if dense and sp.issparse(x):
        x = x.toarray()
    return x, view


def run_probe(
    train: PathLike,
    evals: Sequence[tuple[str, PathLike]],
    sae_path: PathLike,
    out: PathLike,
    pooling: str = "auto",
    c: float = 1.0,
    max_iter: int = 1000,
) -> dict[str, Any]:
    """Logistic-regression probes on SAE latents vs raw activations (Olson et al.)."""
    from vsae.eval.probe import ProbeConfig, compare_probes

    splits_raw, splits_sae = {}, {}
    classes0 = None
    for name, path in [("train", train), *evals]:
        xr, view = _features(path, None, pooling, dense=True)
        xs, _ = _features(path, sae_path, pooling, dense=False)
        y, classes = image_labels(path, view.images)
        if classes0 is None:
            classes0 = classes
        elif classes != classes0:
            raise VsaeError(
                f"split {name!r} ({path}) has classes {classes[:3]}... but train has {classes0[:3]}...; "
                "use splits labelled with the same classes"
            )
        splits_raw[name], splits_sae[name] = (xr, y), (xs, y)
    acc = compare_probes(splits_raw, splits_sae, cfg=ProbeConfig(c=c, max_iter=max_iter))
    res = {"train": str(train), "evals": {n: str(p) for n, p in evals}, "sae": str(sae_path), "accuracy": acc}
    write_json(out, "probe", res)
    return res


def _ood_score_transform(sae):
    import torch

    def f(x, batch_size: int = 1024):
        x = torch.from_numpy(x.toarray() if sp.issparse(x) else np.asarray(x))
        out = np.zeros((x.shape[0], 3))
        with torch.no_grad():
            for a in range(0, x.shape[0], batch_size):
                xb = x[a : a + batch_size]
                z = sae.encode(xb)
                out[a : a + xb.shape[0], 0] = (xb - sae.decode(z)).pow(2).sum(1).numpy()
                out[a : a + xb.shape[0], 1] = z.sum(1).numpy()
                out[a : a + xb.shape[0], 2] = z.max(1).values.numpy()
        return out

    return f


def run_ood(
    in_dist: PathLike,
    ood: Sequence[tuple[str, PathLike]],
    sae_path: PathLike,
    out: PathLike,
    pooling: str = "auto",
) -> dict[str, Any]:
    """OOD detection by reconstruction error, latent sum and latent max: AUROC, FPR@95%TPR.
    For token stores the per-image score is the pooled (mean / CLS) per-token score."""
    from vsae.eval.ood import ood_report, roc_curve

    sae = _load_sae(sae_path)
    names = ("recon_error", "latent_sum", "latent_max")

    def scores(path):
        rows = open_rows(path)
        check_sae_matches(rows, sae)
        view = image_view(rows, pooling)
        s = np.concatenate([c for _, c in view.chunks(_ood_score_transform(sae))()])
        return {n: s[:, i] for i, n in enumerate(names)}, view.pooling

    s_in, pool = scores(in_dist)
    res: dict[str, Any] = {
        "in_distribution": str(in_dist),
        "sae": str(sae_path),
        "pooling": pool,
        "splits": {},
    }
    curves = {}
    for name, path in ood:
        s_ood, _ = scores(path)
        res["splits"][name] = {
            "path": str(path),
            "n_images": int(s_ood[names[0]].size),
            **ood_report(s_in, s_ood),
        }
        for n in names:
            curves[f"{name}: {n}"] = roc_curve(s_in[n], s_ood[n])
    res["n_in_distribution"] = int(s_in[names[0]].size)
    write_json(out, "ood", res)
    plots.roc_curves(curves, Path(out) / "roc.png")
    return res


# ----------------------------------------------------------------------------- names
NOT_ATTRIBUTES = ("path", "id", "split", "caption")


def image_attributes(
    table: PathLike, attributes_file: PathLike | None = None, required: bool = False
) -> tuple[dict[str, np.ndarray], str] | None:
    """Ground-truth attributes of a store's images: attribute -> value per image (index of the
    store's images.json; None where the file has no record) and the file read. The attributes are
    the string fields of the records of `attributes_file` (default DATA/attributes.json of the
    store's data, a world export's), less path, id, split and caption. None if there is no file
    and none was asked for (`attributes_file` or `required`)."""
    import json

    from vsae.data import load_table
    from vsae.eval.shared import attribute_table

    store = Path(table)
    store = store if store.is_dir() else store.parent
    root = load_table(store).get("root")
    f = Path(attributes_file) if attributes_file else Path(root or store) / "attributes.json"
    if not f.is_file():
        if attributes_file or required:
            raise VsaeError(f"attributes file {f} does not exist; give a world export's attributes.json")
        return None
    try:
        first = json.loads(f.read_text())[0]
        keys = [k for k, v in first.items() if isinstance(v, str) and k not in NOT_ATTRIBUTES]
    except (json.JSONDecodeError, IndexError, KeyError, AttributeError, TypeError) as e:
        raise VsaeError(f"{f} is not an attributes.json (list of records with 'path'): {e}") from None
    return attribute_table(store, f, keys), str(f)


def _missing_records(codes: dict[str, np.ndarray], ids: np.ndarray, where: str) -> None:
    missing = sum(int(np.any([c[i] < 0 for c in codes.values()])) for i in ids)
    if missing:
        raise VsaeError(f"{missing} top images have no record in {where}; give the attributes of every image")


def _image_embeddings(path: PathLike, ids: np.ndarray, top_images: PathLike) -> np.ndarray:
    """Rows `ids` of the aligned image embeddings: a store (by image index) or a file with one row
    per image of the table (.npy / .safetensors)."""
    from vsae.eval.sources import ArrayRows

    rows = open_rows(path)
    if not isinstance(rows, ArrayRows):
        return np.asarray(similarity_embeddings(path, ids, str(top_images)))
    if ids.size and int(ids.max()) >= len(rows):
        raise VsaeError(
            f"image embeddings {path} have {len(rows)} rows but the top images refer to image "
            f"{int(ids.max())}; give one row per image of the table, in image order"
        )
    return np.asarray(rows.array)[ids]


def run_names(
    top_images: PathLike,
    image_embeddings: PathLike,
    words: PathLike,
    out: PathLike,
    text_model: str | None = None,
    word_embeddings: PathLike | None = None,
    table: PathLike | None = None,
    prompt: str = "a photo of a {}",
    attributes_file: PathLike | None = None,
) -> dict[str, Any]:
    """Name each latent by the best-matching vocabulary word (Olson et al.'s attribute discovery).

    With `table` and ground-truth attributes (`image_attributes`), `agreement` is
    `attribute_name_agreement` (the demo's rule: the name's attribute must be a purest one of the
    top images and the word its most common value; a word that is no attribute value disagrees);
    `class_match` is the looser per-class count `name_agreement` (name == the most common class)."""
    from vsae.eval.naming import (
        attribute_codes,
        attribute_name_agreement,
        encode_words,
        name_agreement,
        name_latents,
    )

    top = load_top_images(top_images)
    vocab = [w.strip() for w in Path(words).read_text().splitlines() if w.strip()]
    if not vocab:
        raise VsaeError(f"{words} has no words; give one concept word per line")
    if attributes_file is not None and table is None:
        raise VsaeError("--attributes needs --table (the store whose images it describes)")
    if word_embeddings is not None:
        w = load_array(word_embeddings)
    elif text_model is not None:
        from vsae.models import load

        w = encode_words(load(text_model, tower="text"), vocab, prompt)
    else:
        raise VsaeError("give --text-model (CLIP) or --word-embeddings FILE")
    attrs = image_attributes(table, attributes_file) if table is not None else None
    ids = np.unique(top.indices_Fk[top.indices_Fk >= 0])
    emb = _image_embeddings(image_embeddings, ids, top_images)
    pos = np.where(top.indices_Fk >= 0, np.searchsorted(ids, np.clip(top.indices_Fk, 0, None)), -1)
    named = name_latents(pos, top.excluded_F, emb, w, vocab)
    res: dict[str, Any] = {
        "prompt": prompt,
        "n_words": len(vocab),
        "names": named["names"],
        "scores": named["scores"],
    }
    if table is not None:
        from vsae.data import load_table

        if attrs is None:
            res["agreement"] = None
            res["agreement_note"] = "no attributes.json for these images (--attributes): not computed"
        else:
            values, f = attrs
            codes, word_value = attribute_codes(values, vocab)
            _missing_records(codes, ids, f)
            res["agreement"] = {
                "rule": "the name's attribute is a purest one of the top images and the word its "
                "most common value (attribute_name_agreement)",
                "attributes_file": f,
                "attributes": sorted(codes),
                **attribute_name_agreement(
                    named["names"], top.indices_Fk, codes, word_value, unmapped="disagree"
                ),
            }
        t = load_table(table)
        res["class_match"] = {
            "rule": "the name equals the most common class of the top images (name_agreement); "
            "not the attribute agreement",
            **name_agreement(named["names"], top.indices_Fk, np.asarray(t["labels"]), t["classes"]),
        }
    write_json(out, "names", res)
    return res
