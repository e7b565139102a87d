"""`vsae eval explain` end to end: explain every live latent, score the phrases and the controls,
check them against ground truth where there is some, write explanations.json (+ .safetensors with
the vectors the browser's concept search ranks latents by)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from vsae.errors import VsaeError, regular_file
from vsae.eval._arrays import unit_rows
from vsae.eval.eval_config import PROMPT
from vsae.eval.explain import (
    LatentSets,
    TextEncoder,
    detection_auroc,
    latent_sets,
    phrase_agreement,
    shuffled,
    summary,
)
from vsae.eval.explain_config import ExplainConfig
from vsae.eval.explainers import EXPLAINERS, Ask, ExplainContext
from vsae.eval.naming import name_latents, norm_word
from vsae.eval.topimages import TopImages, top_images_streaming
from vsae.eval.write_json import jsonable, write_json
from vsae.store.safe_io import atomic_write_safetensors, writes_to

PathLike = str | os.PathLike[str]
Localise = Callable[[Sequence[str | None], LatentSets], np.ndarray]
"""(phrases, sets) -> [L] localisation score (`vsae.eval.explain_local.localisation`, bound)."""
GroundTruth = tuple[Mapping[str, np.ndarray], Mapping[str, tuple[str, int]]]
"""(attribute -> int code per image, normalised word -> (attribute, code)): `phrase_agreement`'s input."""


def explain_latents(
    acts_NF: Any,
    image_emb_ND: np.ndarray,
    encode: TextEncoder,
    vocabulary: Mapping[str, Sequence[str]],
    cfg: ExplainConfig = ExplainConfig(),
    ground_truth: GroundTruth | None = None,
    images: Callable[[np.ndarray], list[Any]] | None = None,
    ask: Ask | None = None,
    top: TopImages | None = None,
    localise: Localise | None = None,
) -> dict[str, Any]:
    """Explain, score and check every live latent of per-image activations `acts_NF` [N, F]
    (or, with `top`, their top images computed already: `acts_NF` then only gives [N, F] shape).

    `image_emb_ND`: the judge CLIP's image embeddings of the same N images; `encode`: its text
    tower; `localise(phrases, sets)`: the localisation score of patch-level latents
    (`vsae.eval.explain_local.localisation` bound to the maps), or None. Returns the explanations.json object (without paths) and, under "_arrays", the
    per-latent vectors of the concept search (phrase and mean top-image embeddings, unit rows)."""
    sets = latent_sets(acts_NF, cfg.n_top, cfg.n_contrast, cfg.n_random, cfg.seed, cfg.max_latents, top)
    ctx = ExplainContext(np.asarray(image_emb_ND), encode, vocabulary, images, ask, cfg)
    phrases = EXPLAINERS.get(cfg.explainer)(sets, ctx)
    if len(phrases) != len(sets.latents_L):
        raise VsaeError(
            f"explainer {cfg.explainer!r} wrote {len(phrases)} phrases for {len(sets.latents_L)} latents"
        )
    det = detection_auroc(phrases, sets, image_emb_ND, encode)
    shuf = shuffled(phrases, cfg.seed)
    det_shuf = detection_auroc(shuf, sets, image_emb_ND, encode)
    names = vocabulary_names(sets, image_emb_ND, encode, vocabulary)
    det_names = detection_auroc(
        [None if w is None else PROMPT.format(w) for w in names], sets, image_emb_ND, encode
    )
    loc = loc_shuf = None
    if localise is not None:
        loc, loc_shuf = localise(phrases, sets), localise(shuf, sets)
    out: dict[str, Any] = {
        "explainer": cfg.explainer,
        "config": asdict(cfg),
        "n_latents": int(np.shape(acts_NF)[1]),
        "n_images": int(np.shape(acts_NF)[0]),
        "n_explained": len(sets.latents_L),
        "n_phrased": sum(p is not None for p in phrases),
        "score": "detection AUROC: the judge's image-phrase cosine ranks the held-out top images "
        "(ranks 1, 3, 5 ...) above random ones; 0.5 = chance",
        "detection": summary(det),
        "controls": {
            "shuffled": {"rule": "each latent scored with another latent's phrase", **summary(det_shuf)},
            "names": {
                "rule": f"the vocabulary name (vsae eval names: best word for the mean top-image "
                f"embedding) scored as {PROMPT.format('<word>')!r}",
                **summary(det_names),
            },
        },
    }
    if loc is not None and loc_shuf is not None:
        fin, fin_s = loc[np.isfinite(loc)], loc_shuf[np.isfinite(loc_shuf)]
        out["localisation"] = {
            "score": "mean Pearson r, over the held-out top images, of the latent's patch map and the judge's "
            "patch relevance for the phrase (vsae.eval.explain_local); 0 = unrelated",
            "n": int(fin.size),
            "mean_r": float(fin.mean()) if fin.size else None,
            "quantiles_r": dict(zip(("10", "50", "90"), map(float, np.quantile(fin, [0.1, 0.5, 0.9]))))
            if fin.size
            else None,
            "shuffled_mean_r": float(fin_s.mean()) if fin_s.size else None,
        }
    gt = None
    if ground_truth is not None:
        codes, word_value = ground_truth
        gt = {
            k: phrase_agreement(p, sets.top_Lk, codes, word_value)
            for k, p in (("explanations", phrases), ("names", names), ("shuffled", shuf))
        }
        out["ground_truth"] = {
            "rule": "the phrase names a purest attribute of the top images with its most common value, "
            "and every attribute value it says is its attribute's most common value (phrase_agreement)",
            **{k: {kk: vv for kk, vv in v.items() if kk != "verdict_L"} for k, v in gt.items()},
        }
    out["latents"] = [
        {
            "latent": int(f),
            "phrase": phrases[j],
            "detection": det[j],
            "shuffled_phrase": shuf[j],
            "shuffled_detection": det_shuf[j],
            "name": names[j],
            "name_detection": det_names[j],
            **(
                {}
                if loc is None or loc_shuf is None
                else {"localisation": loc[j], "shuffled_localisation": loc_shuf[j]}
            ),
            **({} if gt is None else {k: gt[k]["verdict_L"][j] for k in ("explanations", "names")}),
        }
        for j, f in enumerate(sets.latents_L)
    ]
    out["_arrays"] = concept_vectors(phrases, sets, image_emb_ND, encode)
    out["_gt_L"] = None if gt is None else {k: v["verdict_L"] for k, v in gt.items()}
    return out


def vocabulary_names(
    sets: LatentSets, image_emb_ND: np.ndarray, encode: TextEncoder, vocabulary: Mapping[str, Sequence[str]]
) -> list[str | None]:
    """The control of `vsae eval names` on the same latents: the vocabulary word whose prompt best
    matches the mean embedding of the latent's top images (`vsae.eval.naming.name_latents`)."""
    words = list(dict.fromkeys(w for ws in vocabulary.values() for w in ws))
    if not words or len(sets.latents_L) == 0:
        return [None] * len(sets.latents_L)
    w_WD = encode([PROMPT.format(w) for w in words])
    excluded = np.zeros(len(sets.latents_L), bool)
    return name_latents(sets.top_Lk, excluded, np.asarray(image_emb_ND, np.float64), w_WD, words)["names"]


def concept_vectors(
    phrases: Sequence[str | None], sets: LatentSets, image_emb_ND: np.ndarray, encode: TextEncoder
) -> dict[str, np.ndarray]:
    """Per explained latent: the judge's unit embedding of its phrase (zeros without one) and the
    unit mean of its top images' unit embeddings: what a concept query is compared with."""
    img, _ = unit_rows(np.asarray(image_emb_ND, np.float64))
    top_LD, _ = unit_rows(img[sets.top_Lk].mean(1)) if len(sets.latents_L) else (img[:0], None)
    phrase_LD = np.zeros_like(top_LD)
    have = [j for j, p in enumerate(phrases) if p]
    if have:
        phrase_LD[have], _ = unit_rows(np.asarray(encode([phrases[j] or "" for j in have]), np.float64))
    return {"latents": sets.latents_L.astype(np.int64), "phrase_emb": phrase_LD, "top_emb": top_LD}


def read_vocabulary(path: PathLike) -> dict[str, list[str]]:
    """A vocabulary file: JSON ``{slot: [words]}`` (slots fill the templates' ``{slot}``) or a text
    file with one word per line (slot ``word``)."""
    fix = "give a UTF-8 text file with one word per line, or a JSON object {slot: [words]}"
    try:
        text = regular_file(path, "vocabulary", fix).read_text()
    except UnicodeDecodeError:
        raise VsaeError(f"vocabulary {path} is not UTF-8 text; {fix}") from None
    if str(path).endswith(".json"):
        try:
            v = json.loads(text)
        except ValueError:
            raise VsaeError(f"vocabulary {path} is not valid JSON; {fix}") from None
        if not isinstance(v, dict) or not all(
            isinstance(ws, list) and all(isinstance(w, str) for w in ws) for ws in v.values()
        ):
            raise VsaeError(f"vocabulary {path} is not an object of word lists; {fix}")
        vocab = {str(k): [w.strip() for w in ws if w.strip()] for k, ws in v.items()}
    else:
        vocab = {"word": [w.strip() for w in text.splitlines() if w.strip()]}
    if not any(vocab.values()):
        raise VsaeError(f"{path} has no words; {fix}")
    return vocab


def ground_truth_of(values: Mapping[str, Sequence[str | None]]) -> GroundTruth:
    """`phrase_agreement`'s input from string attribute values per image (None: unknown): codes
    index each attribute's sorted values; words that are a value of two attributes, or of more
    than one word, are left out (they cannot be checked)."""
    codes: dict[str, np.ndarray] = {}
    seen: dict[str, list[tuple[str, int]]] = {}
    for a, col in values.items():
        vocab = sorted({v for v in col if v is not None})
        index = {v: i for i, v in enumerate(vocab)}
        codes[a] = np.array([-1 if v is None else index[v] for v in col], np.int64)
        for v, i in index.items():
            seen.setdefault(norm_word(v), []).append((a, i))
    return codes, {w: h[0] for w, h in seen.items() if len(h) == 1 and " " not in w}


def _check_table(prov: Mapping[str, Any], table: PathLike) -> None:
    """Refuse a --table of other images than the store's (both record kind, root, split)."""
    from vsae.data import load_table
    from vsae.eval.readers import data_of

    mine = data_of(dict(prov))
    t = load_table(Path(table), need_items=True)
    theirs = (t.get("kind"), t.get("root"), t.get("split"))
    if mine and list(mine) != list(theirs):
        raise VsaeError(
            f"--table {table} describes images of {theirs[1]} (split {theirs[2]}) but the store holds "
            f"{mine[1]} (split {mine[2]}); give the store's own images.json"
        )


def write_explanations(out: PathLike, res: Mapping[str, Any], extra: Mapping[str, Any]) -> Path:
    """explanations.json (+ explanations.safetensors, the concept-search vectors) into `out`."""
    Path(out).mkdir(parents=True, exist_ok=True)
    arrays = res["_arrays"]
    atomic_write_safetensors(
        Path(out) / "explanations.safetensors",
        {k: np.ascontiguousarray(v) for k, v in arrays.items()},
        metadata={"judge": str(extra.get("judge", ""))},
    )
    body = {**extra, **{k: v for k, v in res.items() if not k.startswith("_")}}
    return write_json(out, "explanations", jsonable(body))


@writes_to("out")
def run_explain(
    out: PathLike,
    acts: PathLike | None,
    sae_path: PathLike | None,
    latents: PathLike | None,
    words: PathLike,
    cfg: ExplainConfig,
    pooling: str = "auto",
    judge_clip: str | None = None,
    image_embeddings: PathLike | None = None,
    table: PathLike | None = None,
    attributes_file: PathLike | None = None,
    ask: Ask | None = None,
    progress: bool = True,
    force: bool = False,
) -> dict[str, Any]:
    """`vsae eval explain`: explanations.json of an SAE on an image store (module docstring).

    Judge: `judge_clip` (a CLIP with a text tower), default the store's own model when it has one;
    its image embeddings are `image_embeddings` (a store of its `embed` hook over the same images,
    or a file with one row per image) or computed into OUT/judge-embeddings."""
    from vsae.eval.attributes import image_attributes
    from vsae.eval.commands import latent_view
    from vsae.eval.naming import encode_words
    from vsae.eval.readers import open_rows, similarity_embeddings, similarity_store
    from vsae.models import load  # loads transformers: only when the command runs

    cfg.check()
    vocab = read_vocabulary(words)
    EXPLAINERS.get(cfg.explainer)  # an unknown explainer fails before anything is computed
    if attributes_file is not None and table is None:
        raise VsaeError("--attributes needs --table (the store whose images it describes)")
    view, transform, desc = latent_view(acts, sae_path, latents, pooling, force)
    prov = view.rows.provenance
    judge = judge_clip or prov.get("model")
    if not judge:
        raise VsaeError("the store records no model; give --judge-clip (a CLIP with a text tower)")
    try:
        text_lm = load(str(judge), tower="text")
    except VsaeError as e:
        raise VsaeError(f"judge {judge} has no usable text tower ({e}); give --judge-clip CLIP") from None
    if image_embeddings is None:
        if acts is None:
            raise VsaeError("give --image-embeddings (the judge's `embed` over these images) or --acts")
        image_embeddings = similarity_store(
            str(judge), open_rows(acts), Path(out) / "judge-embeddings", progress=progress
        )
    emb = similarity_embeddings(image_embeddings, view.images, view.rows.name, prov, view.rows.path)
    top = top_images_streaming(view.chunks(transform), k=cfg.n_top, progress=progress)
    shape_NF = np.broadcast_to(np.zeros((), np.bool_), (len(view), top.indices_Fk.shape[0]))  # sizes only
    gt = None
    if table is not None:
        _check_table(prov, table)
        attrs = image_attributes(table, attributes_file)
        if attrs is not None:
            gt = ground_truth_of({a: [v[i] for i in view.images] for a, v in attrs.values.items()})
    images_fn = None
    patch_level = view.pooling != "none" and prov.get("tokens") in ("all", "patches")
    if ask is not None or patch_level:
        from vsae.data import DecodeError, load_image, load_table

        t = load_table(Path(acts or latents or ""), need_items=True)
        root = Path(t.get("root") or "")
        root = root / t["split"] if t.get("kind", "folder") == "folder" and t.get("split") else root

        def images_fn(pos: np.ndarray) -> list[Any]:
            out = []
            for p in pos:
                f = root / t["items"][int(view.images[p])]
                try:
                    out.append(load_image(f))
                except DecodeError as e:
                    raise VsaeError(
                        f"image {f} of the store cannot be read ({e}); is --acts' data still there?"
                    ) from None
            return out

    encode = lambda ps: encode_words(text_lm, list(ps), "{}")  # noqa: E731
    localise = None
    if patch_level and images_fn is not None:
        import functools

        from vsae.eval.explain_local import judge_patch_embeddings, localisation, store_latent_map

        judge_lm = load(str(judge))
        fetch = images_fn
        maps = store_latent_map(view, transform, int(prov.get("n_prefix_tokens") or 0))
        localise = functools.partial(
            localisation, latent_map=maps, patch_emb=lambda pos: judge_patch_embeddings(judge_lm, fetch(pos)),
            encode=encode,
        )  # fmt: skip
    res = explain_latents(shape_NF, emb, encode, vocab, cfg, gt, images_fn, ask, top, localise)
    write_explanations(out, res, {"judge": str(judge), "sources": desc, "pooling": view.pooling})
    return res
