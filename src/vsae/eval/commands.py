"""One function per `vsae eval` sub-command: read stores / SAEs / files, call the metric functions,
write `<name>.json` (+ PNG figures, + per-latent arrays as .safetensors) into an output directory.
The CLI (`vsae.cli.eval`) is a thin wrapper around these."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from safetensors import SafetensorError, safe_open
from tqdm.auto import tqdm

from vsae.data import load_table
from vsae.errors import VsaeError, regular_file
from vsae.eval import class_hierarchy as tx
from vsae.eval import plots
from vsae.eval.attributes import image_attributes
from vsae.eval.eval_config import (
    MsConfig,
    NamesConfig,
    PoolingConfig,
    ProbeConfig,
    ReconConfig,
    TopImagesConfig,
)
from vsae.eval.hierarchy import depth_per_group, latent_lca_depths, lca_depth_matrix, ontology_report
from vsae.eval.monosemanticity import embedding_baseline, monosemanticity_score_streaming
from vsae.eval.naming import (
    attribute_codes,
    attribute_name_agreement,
    encode_words,
    name_agreement,
    name_latents,
)
from vsae.eval.ood import ood_report, roc_curve
from vsae.eval.probe import compare_probes, standardization
from vsae.eval.readers import (
    ArrayRows,
    ImageView,
    check_sae_matches,
    data_of,
    image_labels,
    image_view,
    load_array,
    open_rows,
    sae_transform,
    similarity_embeddings,
    similarity_store,
)
from vsae.eval.recon import ReconAccumulator
from vsae.eval.sampling import describe_sample, spread_sample
from vsae.eval.topimages import TopImages, jaccard_pair_counts, top_images_streaming
from vsae.eval.typed_results import (
    HierarchyReport,
    MSKind,
    MSReport,
    NamesReport,
    OODReport,
    ProbeReport,
    ReconReport,
    TopImagesReport,
    UniquenessReport,
)
from vsae.eval.write_json import write_json
from vsae.sae import SAE
from vsae.sae import load as load_sae
from vsae.sae.batched import iter_encode
from vsae.store.inputs import check_ids, check_values
from vsae.store.safe_io import atomic_write_safetensors, writes_to

PathLike = str | os.PathLike[str]


def positive(option: str, v: Any) -> None:
    """One line unless ``v`` is an integer >= 1."""
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise VsaeError(f"{option} {v}: must be an integer >= 1")


SpliceMetrics = Callable[[SAE, str], dict[str, Any]]
"""(SAE, hook) -> the "splice" entry of recon.json; e.g. `vsae.steer.reconstruction.splice_metrics`
bound to a model and images (functools.partial)."""


def latent_view(
    acts: PathLike | None,
    sae_path: PathLike | None,
    latents: PathLike | None,
    pooling: str,
    force: bool = False,
) -> tuple[ImageView, Callable[[Any], Any] | None, dict[str, str]]:
    """(per-image view, transform to latents or None, description) for SAE latents given either
    as a sparse latents store (`vsae encode`) or as raw activations + an SAE (encoded on the fly;
    the store's hook and tokens checked against the SAE's unless `force`)."""
    if latents is not None:
        rows = open_rows(latents)
        return image_view(rows, pooling), None, {"latents": str(latents)}
    if acts is None or sae_path is None:
        raise VsaeError("give --latents STORE, or --acts STORE with --sae RUN")
    sae = load_sae(sae_path)
    rows = open_rows(acts)
    check_sae_matches(rows, sae, force, str(sae_path))
    return image_view(rows, pooling), sae_transform(sae), {"acts": str(acts), "sae": str(sae_path)}


# ----------------------------------------------------------------------------- recon
@writes_to("out")
def run_recon(
    acts: PathLike,
    sae_path: PathLike,
    out: PathLike,
    batch_size: int = ReconConfig.batch_size,
    max_rows: int | None = None,
    progress: bool = True,
    splice: SpliceMetrics | None = None,
    hook: str | None = None,
    seed: int = ReconConfig.seed,
    force: bool = False,
) -> ReconReport:
    """MSE, FVU, L0, dead/dense fractions and firing frequencies of an SAE on a held-out store
    (`max_rows`: a seeded sample of that many rows spanning the store, `vsae.eval.sampling`);
    with `splice` (e.g. `vsae.steer.reconstruction.splice_metrics` bound to a model and images), also
    the splice effect at `hook` (default: the store's hook) under "splice". A store whose hook or
    token selection differs from the SAE's training rows is refused unless `force`
    (`vsae.sae.selection`)."""
    positive("--batch-size", batch_size)
    if max_rows is not None:
        positive("--max-rows", max_rows)
    sae = load_sae(sae_path)
    rows = open_rows(acts)
    check_sae_matches(rows, sae, force, str(sae_path))
    n = len(rows)
    keep = spread_sample(n, max_rows, seed)  # never the first rows of a class-ordered store
    acc = ReconAccumulator()
    with torch.no_grad():
        for a in tqdm(range(0, n, batch_size), desc="recon", disable=not progress, leave=False):
            b = min(a + batch_size, n)
            sel = keep[(keep >= a) & (keep < b)] - a
            if sel.size == 0:
                continue
            chunk = rows.read(a, b)
            chunk = chunk[sel] if sel.size < b - a else chunk
            x = torch.from_numpy(_dense(chunk))
            z = sae.encode(x)
            acc.update(x, sae.decode(z), z)
    spliced = None
    if splice is not None:
        hook = hook or rows.provenance.get("hook")
        if not hook:
            raise VsaeError(f"{acts} does not record its hook; pass --hook")
        spliced = splice(sae, hook)
    rep = ReconReport(str(acts), str(sae_path), describe_sample(n, max_rows, seed), acc.result(), spliced)
    write_json(out, "recon", rep.to_json())
    plots.firing_frequency(rep.recon.frequency_histogram(), Path(out) / "firing_frequency.png")
    return rep


# ----------------------------------------------------------------------------- MS
@writes_to("out")
def run_ms(
    embeddings: PathLike | None,
    out: PathLike,
    acts: PathLike | None = None,
    sae_path: PathLike | None = None,
    latents: PathLike | None = None,
    pooling: str = PoolingConfig.pooling,
    raw: bool = MsConfig.raw,
    progress: bool = True,
    embed_model: str | None = None,
    embed_cache: PathLike | None = None,
    force: bool = False,
) -> MSReport:
    """MS of SAE latents and (with the same code) of the raw neurons at the hook (Pach et al.)."""
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
    scored: dict[str, MSKind] = {}
    kinds: list[tuple[str, ImageView, Callable[[Any], Any] | None, dict[str, str]]] = []
    if latents is not None or sae_path is not None:
        view, transform, desc = latent_view(acts, sae_path, latents, pooling, force)
        kinds.append(("sae", view, transform, desc))
    if acts is not None and raw:
        rv = image_view(open_rows(acts), pooling)
        kinds.append(("raw", rv, None, {"acts": str(acts)}))
    if not kinds:
        raise VsaeError("nothing to score: give --acts (raw neurons) and/or --sae / --latents")
    baseline = None
    for name, view, transform, desc in kinds:
        if len(view) < 2:
            raise VsaeError(
                f"{view.rows.name} covers {len(view)} image(s); the MS compares pairs of images, so it "
                "needs at least 2: evaluate a larger store"
            )
        e = similarity_embeddings(
            embeddings, view.images, view.rows.name, view.rows.provenance, view.rows.path
        )
        r = monosemanticity_score_streaming(view.chunks(transform), e, progress=progress)
        scored[name] = MSKind(desc, view.pooling, r)
        baseline = embedding_baseline(e) if baseline is None else baseline  # the same images for each kind
    rep = MSReport(str(embeddings), embed_model, scored, baseline)
    scores = {k: v.result.scores_F for k, v in scored.items()}
    Path(out).mkdir(parents=True, exist_ok=True)
    atomic_write_safetensors(
        Path(out) / "ms_scores.safetensors", {k: v.astype(np.float64) for k, v in scores.items()}
    )
    write_json(out, "ms", rep.to_json())
    plots.ms_histogram(
        {{"sae": "SAE latents", "raw": "raw neurons"}[k]: v for k, v in scores.items()},
        Path(out) / "ms_histogram.png",
        baseline=baseline,
    )
    return rep


# ----------------------------------------------------------------------------- HAI, uniqueness
@writes_to("out")
def run_top_images(
    out: PathLike,
    acts: PathLike | None = None,
    sae_path: PathLike | None = None,
    latents: PathLike | None = None,
    k: int = TopImagesConfig.k,
    pooling: str = PoolingConfig.pooling,
    progress: bool = True,
    force: bool = False,
) -> TopImagesReport:
    """HAI_k per latent (as image indices of the store) with the worst value."""
    positive("--k", k)
    view, transform, desc = latent_view(acts, sae_path, latents, pooling, force)
    if k > len(view):
        raise VsaeError(
            f"--k {k} is more than the {len(view)} images of {view.rows.name}: every latent would be "
            f"excluded; use --k {max(len(view), 1)} or less"
        )
    top = top_images_streaming(view.chunks(transform), k=k, progress=progress)
    img = np.where(top.indices_Fk >= 0, view.images[np.clip(top.indices_Fk, 0, None)], -1)
    Path(out).mkdir(parents=True, exist_ok=True)
    atomic_write_safetensors(
        Path(out) / "top_images.safetensors",
        {"image_index": img.astype(np.int64), "values": top.values_Fk.astype(np.float64)},
        metadata={
            "k": str(k),
            "pooling": view.pooling,
            "n_images": str(len(view)),
            # the images these ids index: a --table of other images is refused (check_table_matches)
            **({"data": json.dumps(data)} if (data := data_of(view.rows.provenance)) else {}),
        },
    )
    rep = TopImagesReport(desc, k, view.pooling, len(view), top)
    write_json(out, "top_images", rep.to_json())
    return rep


def load_top_images(path: PathLike) -> TopImages:
    """The `top_images.safetensors` written by `run_top_images` (as a TopImages over image ids)."""
    p = Path(path)
    p = p / "top_images.safetensors" if p.is_dir() else p
    fix = "run `vsae eval top-images` again"
    if not os.path.lexists(p):
        raise VsaeError(f"{p} does not exist; run `vsae eval top-images` first")
    regular_file(p, "top-images file", fix)
    try:
        with safe_open(str(p), "numpy") as f:
            meta = f.metadata() or {}
            idx, val = f.get_tensor("image_index"), f.get_tensor("values")
    except (SafetensorError, OSError, ValueError, TypeError) as e:
        why = (str(e).splitlines() or [type(e).__name__])[0][:120]
        raise VsaeError(f"{p} is not a readable top-images file ({why}); {fix}") from None
    check_values(val, f"{p} (values)", fix)
    if idx.ndim != 2 or idx.shape != val.shape:
        raise VsaeError(
            f"{p}: image_index has shape {tuple(idx.shape)} and values {tuple(val.shape)}; "
            f"both must be the same [latents, k]; {fix}"
        )
    n_meta = meta.get("n_images")
    if n_meta is not None and not str(n_meta).isdigit():
        raise VsaeError(f"{p}: metadata n_images {str(n_meta)[:40]!r} is not a count; {fix}")
    idx = check_ids(idx, f"{p} (image_index)", fix, below=None, allow=-1)
    n = int(n_meta) if n_meta is not None else int(idx.max(initial=-1)) + 1
    return TopImages(indices_Fk=idx, values_Fk=val, n_rows=n)


def check_table_matches(top_images: PathLike, table: PathLike) -> None:
    """Refuse a --table describing other images than the store the top images were computed on
    (both record the image source: kind, root, split), since its labels would label the wrong images."""
    p = Path(top_images)
    p = p / "top_images.safetensors" if p.is_dir() else p
    with safe_open(str(p), "numpy") as f:
        recorded = (f.metadata() or {}).get("data")
    if recorded is None:
        return  # written before the source was recorded, or by a store without provenance
    t = load_table(Path(table), need_items=True)
    theirs = [t.get("kind"), t.get("root"), t.get("split")]
    try:
        mine = json.loads(recorded)
    except json.JSONDecodeError:
        raise VsaeError(f"{p}: metadata 'data' is not JSON; run `vsae eval top-images` again") from None
    if mine != theirs:
        raise VsaeError(
            f"--table {table} describes the images of {theirs[1]} (split {theirs[2]}) but the top images "
            f"index those of {mine[1] if isinstance(mine, list) and len(mine) > 1 else mine} "
            f"(split {mine[2] if isinstance(mine, list) and len(mine) > 2 else None}); "
            "give the images.json of the store the top images come from"
        )


@writes_to("out")
def run_uniqueness(top_images: PathLike, out: PathLike) -> UniquenessReport:
    """Pairwise Jaccard overlap counts of the latents' top-image sets (uniqueness)."""
    rep = UniquenessReport(str(top_images), jaccard_pair_counts(load_top_images(top_images)))
    write_json(out, "uniqueness", rep.to_json())
    return rep


# ----------------------------------------------------------------------------- hierarchy
def load_hierarchy(
    table: PathLike,
    classes: Sequence[str],
    taxonomy: PathLike | None = None,
    inat: bool = False,
    wordnet: PathLike | None = None,
) -> tx.ClassHierarchy:
    """The class hierarchy: a file, iNaturalist class names, WordNet, or the store's taxonomy.json."""
    if (taxonomy is not None) + (wordnet is not None) + bool(inat) > 1:
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


def _attribute_labels(
    table: PathLike, attributes_file: PathLike | None, name: str, taxonomy: tx.AttributeTaxonomy
) -> tuple[list[str], np.ndarray, tx.ClassHierarchy, str]:
    """(values, value index per image or -1, the value taxonomy, the file read) of an attribute
    taxonomy registered as `name` (e.g. the world's colours)."""
    attrs = image_attributes(table, attributes_file, required=True)
    assert attrs is not None  # required=True raises instead
    f, attr = attrs.file, taxonomy.attribute
    if attr not in attrs.values:
        raise VsaeError(
            f"{f} has no {attr!r} attribute; --taxonomy {name} needs attributes.json records with it "
            "(a world export's)"
        )
    index = {c: i for i, c in enumerate(taxonomy.values)}
    col = attrs.values[attr]
    bad = sorted({v for v in col if v is not None and v not in index})
    if bad:
        raise VsaeError(f"{f}: {attr}s {bad} are not in the {taxonomy.source} {taxonomy.values}")
    labels = np.array([-1 if v is None else index[v] for v in col], dtype=np.int64)
    return taxonomy.values, labels, taxonomy.hierarchy(), f


def _group_sizes(n_latents: int, sae_path: PathLike | None, groups: Sequence[float] | None) -> list[int]:
    if sae_path is not None:
        cfg = load_sae(sae_path).cfg
        return list(cfg.nested_groups)
    if groups:
        if not all(math.isfinite(g) and 0 < g <= 1 for g in groups) or abs(sum(groups) - 1) > 1e-6:
            raise VsaeError(f"--groups {','.join(map(str, groups))}: give fractions in (0, 1] that sum to 1")
        from vsae.sae.archs.matryoshka import MatryoshkaConfig

        return list(MatryoshkaConfig(d_in=1, d_sae=n_latents, k=1, groups=tuple(groups)).group_sizes)
    return [n_latents]


@writes_to("out")
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
) -> HierarchyReport:
    """LCA depth per Matryoshka group (Pach et al.) and the ontology figures (project definition).

    `taxonomy` may name a registered attribute taxonomy (`vsae.eval.class_hierarchy.AttributeTaxonomy`;
    e.g. "world-colour", the shapes world's colour families, registered by `vsae.world`): each
    image is then labelled by that attribute in `attributes_file` (default DATA/attributes.json)."""
    top = load_top_images(top_images)
    check_table_matches(top_images, table)
    ids = np.unique(top.indices_Fk[top.indices_Fk >= 0])
    named = tx.attribute_taxonomy(str(taxonomy)) if taxonomy is not None else None
    if named is not None:
        if inat or wordnet is not None:
            raise VsaeError("give one of --taxonomy, --inat, --wordnet")
        classes, labels_all, tax, where = _attribute_labels(table, attributes_file, str(taxonomy), named)
    else:
        if attributes_file is not None:
            raise VsaeError("--attributes is read only with --taxonomy world-colour")
        _, classes = image_labels(table, ids)
        labels_all = np.asarray(load_table(Path(table), need_items=True)["labels"], dtype=np.int64)
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
    rep = HierarchyReport(
        str(top_images), tax.source, len(cls_names), per_group, depths["rounded"], depths["majority"], onto
    )
    write_json(out, "hierarchy", rep.to_json())
    plots.depth_per_group(per_group, Path(out) / "depth_per_group.png")
    return rep


# ----------------------------------------------------------------------------- probes, OOD
def _dense(x: Any) -> np.ndarray:
    """A dense numpy array of a dense or CSR chunk."""
    return np.asarray(x.toarray() if sp.issparse(x) else x)


def _features(
    path: PathLike, sae_path: PathLike | None, pooling: str, dense: bool, force: bool = False
) -> tuple[Any, ImageView]:
    """All per-image rows of a store (raw, or SAE latents with `sae_path`) and its image view."""
    rows = open_rows(path)
    view = image_view(rows, pooling)
    transform = None
    if sae_path is not None:
        sae = load_sae(sae_path)
        check_sae_matches(rows, sae, force, str(sae_path))
        transform = sae_transform(sae)
    parts = [c for _, c in view.chunks(transform)()]
    if not parts:
        raise VsaeError(f"{path} has no rows")
    x = sp.vstack(parts, format="csr") if sp.issparse(parts[0]) else np.concatenate(parts)
    return (_dense(x) if dense else x), view


def check_split_names(named: Sequence[tuple[str, PathLike]], option: str, reserved: str = "") -> None:
    """Refuse split names that are empty, repeated (one would silently replace the other in the
    report) or the `reserved` name of another option's split (`--eval train=...` would report a
    probe's accuracy on that store as its training accuracy)."""
    seen: set[str] = set()
    for name, path in named:
        if not name.strip():
            raise VsaeError(f"{option} ={path}: give the split a name, NAME=STORE")
        if reserved and name == reserved:
            raise VsaeError(
                f"{option} {name}={path}: {name!r} names the --{reserved} store's split; "
                f"give this split another name (e.g. test={path})"
            )
        if name in seen:
            raise VsaeError(f"{option} names the split {name!r} twice; give each split its own name")
        seen.add(name)


@writes_to("out")
def run_probe(
    train: PathLike,
    evals: Sequence[tuple[str, PathLike]],
    sae_path: PathLike,
    out: PathLike,
    pooling: str = PoolingConfig.pooling,
    c: float = ProbeConfig.c,
    max_iter: int = ProbeConfig.max_iter,
    standardize: bool = ProbeConfig.standardize,
    force: bool = False,
) -> ProbeReport:
    """Logistic-regression probes on SAE latents vs raw activations (Olson et al.); with
    `standardize` each feature is scaled by its train-split statistics first
    (`vsae.eval.probe.probe_accuracy`: raw features centred and scaled, SAE latents scaled only)."""
    check_split_names(evals, "--eval", reserved="train")
    if not (isinstance(c, int | float) and math.isfinite(c) and c > 0):
        raise VsaeError(f"--c {c}: the inverse regularisation strength must be a number > 0, e.g. 1.0")
    positive("--max-iter", max_iter)
    splits_raw: dict[str, tuple[Any, np.ndarray]] = {}
    splits_sae: dict[str, tuple[Any, np.ndarray]] = {}
    classes0: list[str] | None = None
    for name, path in [("train", train), *evals]:
        xr, view = _features(path, None, pooling, dense=True)
        xs, _ = _features(path, sae_path, pooling, dense=False, force=force)
        y, classes = image_labels(path, view.images)
        if classes0 is None:
            classes0 = classes
        elif classes != classes0:
            raise VsaeError(
                f"split {name!r} ({path}) has classes {classes[:3]}... but train has {classes0[:3]}...; "
                "use splits labelled with the same classes"
            )
        splits_raw[name], splits_sae[name] = (xr, y), (xs, y)
    cfg = ProbeConfig(c=c, max_iter=max_iter, standardize=standardize)
    acc = compare_probes(splits_raw, splits_sae, cfg=cfg)
    rep = ProbeReport(str(train), {n: str(p) for n, p in evals}, str(sae_path), acc, standardization(cfg))
    write_json(out, "probe", rep.to_json())
    return rep


def _ood_score_transform(sae: SAE) -> Callable[[Any], np.ndarray]:
    """Chunk -> [n, 3] (reconstruction error, latent sum, latent max) per row."""

    def f(chunk: Any, batch_size: int = 1024) -> np.ndarray:
        x = _dense(chunk)
        out = np.zeros((x.shape[0], 3))
        for b in iter_encode(sae, x, batch_size, decode=True):
            assert b.x_hat is not None
            z, sl = b.z.float().cpu(), slice(b.start, b.start + len(b.z))
            out[sl, 0] = (b.x - b.x_hat).pow(2).sum(1).float().cpu().numpy()
            out[sl, 1] = z.sum(1).numpy()
            out[sl, 2] = z.max(1).values.numpy()
        return out

    return f


@writes_to("out")
def run_ood(
    in_dist: PathLike,
    ood: Sequence[tuple[str, PathLike]],
    sae_path: PathLike,
    out: PathLike,
    pooling: str = PoolingConfig.pooling,
    force: bool = False,
) -> OODReport:
    """OOD detection by reconstruction error, latent sum and latent max: AUROC, FPR@95%TPR.
    For token stores the per-image score is the pooled (mean / CLS) per-token score."""
    check_split_names(ood, "--ood")
    sae = load_sae(sae_path)
    names = ("recon_error", "latent_sum", "latent_max")

    def scores(path: PathLike) -> tuple[dict[str, np.ndarray], str]:
        rows = open_rows(path)
        check_sae_matches(rows, sae, force, str(sae_path))
        view = image_view(rows, pooling)
        s = np.concatenate([c for _, c in view.chunks(_ood_score_transform(sae))()])
        return {n: s[:, i] for i, n in enumerate(names)}, view.pooling

    s_in, pool = scores(in_dist)
    splits: dict[str, dict[str, Any]] = {}
    curves = {}
    for name, path in ood:
        s_ood, _ = scores(path)
        splits[name] = {
            "path": str(path),
            "n_images": int(s_ood[names[0]].size),
            **ood_report(s_in, s_ood),
        }
        for n in names:
            curves[f"{name}: {n}"] = roc_curve(s_in[n], s_ood[n])
    rep = OODReport(str(in_dist), str(sae_path), pool, splits, int(s_in[names[0]].size))
    write_json(out, "ood", rep.to_json())
    plots.roc_curves(curves, Path(out) / "roc.png")
    return rep


# ----------------------------------------------------------------------------- names
def _missing_records(codes: dict[str, np.ndarray], ids: np.ndarray, where: str) -> None:
    missing = sum(int(np.any([c[i] < 0 for c in codes.values()])) for i in ids)
    if missing:
        raise VsaeError(f"{missing} top images have no record in {where}; give the attributes of every image")


def _image_embeddings(path: PathLike, ids: np.ndarray, top_images: PathLike) -> np.ndarray:
    """Rows `ids` of the aligned image embeddings: a store (by image index) or a file with one row
    per image of the table (.npy / .safetensors)."""
    rows = open_rows(path)
    if not isinstance(rows, ArrayRows):
        return np.asarray(similarity_embeddings(path, ids, str(top_images)))
    if ids.size and int(ids.max()) >= len(rows):
        raise VsaeError(
            f"image embeddings {path} have {len(rows)} rows but the top images refer to image "
            f"{int(ids.max())}; give one row per image of the table, in image order"
        )
    return np.asarray(rows.array)[ids]


@writes_to("out")
def run_names(
    top_images: PathLike,
    image_embeddings: PathLike,
    words: PathLike,
    out: PathLike,
    text_model: str | None = None,
    word_embeddings: PathLike | None = None,
    table: PathLike | None = None,
    prompt: str = NamesConfig.prompt,
    attributes_file: PathLike | None = None,
) -> NamesReport:
    """Name each latent by the best-matching vocabulary word (Olson et al.'s attribute discovery).

    With `table` and ground-truth attributes (`image_attributes`), `agreement` is
    `attribute_name_agreement` (the demo's rule: the name's attribute must be a purest one of the
    top images and the word its most common value; a word that is no attribute value disagrees);
    `class_match` is the looser per-class count `name_agreement` (name == the most common class)."""
    top = load_top_images(top_images)
    wfix = "give a UTF-8 text file with one concept word per line"
    try:
        text = regular_file(words, "word list", wfix).read_text()
    except UnicodeDecodeError:
        raise VsaeError(f"word list {words} is not UTF-8 text; {wfix}") from None
    vocab = [w.strip() for w in text.splitlines() if w.strip()]
    if not vocab:
        raise VsaeError(f"{words} has no words; give one concept word per line")
    if attributes_file is not None and table is None:
        raise VsaeError("--attributes needs --table (the store whose images it describes)")
    if word_embeddings is not None:
        w = load_array(word_embeddings)
    elif text_model is not None:
        from vsae.models import load  # loads transformers: only for this option

        w = encode_words(load(text_model, tower="text"), vocab, prompt)
    else:
        raise VsaeError("give --text-model (CLIP) or --word-embeddings FILE")
    if table is not None:
        check_table_matches(top_images, table)
    attrs = image_attributes(table, attributes_file) if table is not None else None
    ids = np.unique(top.indices_Fk[top.indices_Fk >= 0])
    emb = _image_embeddings(image_embeddings, ids, top_images)
    pos = np.where(top.indices_Fk >= 0, np.searchsorted(ids, np.clip(top.indices_Fk, 0, None)), -1)
    named = name_latents(pos, top.excluded_F, emb, w, vocab)
    rep = NamesReport(prompt, len(vocab), named["names"], named["scores"])
    if table is not None:
        agreement, note = None, None
        if attrs is None:
            note = "no attributes.json for these images (--attributes): not computed"
        else:
            f = attrs.file
            codes, word_value = attribute_codes({k: list(v) for k, v in attrs.values.items()}, vocab)
            _missing_records(codes, ids, f)
            agreement = {
                "rule": "the name's attribute is a purest one of the top images and the word its "
                "most common value (attribute_name_agreement)",
                "attributes_file": f,
                "attributes": sorted(codes),
                **attribute_name_agreement(
                    named["names"], top.indices_Fk, codes, word_value, unmapped="disagree"
                ),
            }
        t = load_table(Path(table), need_items=True)
        class_match = {
            "rule": "the name equals the most common class of the top images (name_agreement); "
            "not the attribute agreement",
            **name_agreement(named["names"], top.indices_Fk, np.asarray(t["labels"]), t["classes"]),
        }
        rep = dataclasses.replace(
            rep, checked=True, agreement=agreement, agreement_note=note, class_match=class_match
        )
    write_json(out, "names", rep.to_json())
    return rep
