"""`vsae eval ...`: the evaluation metrics; each sub-command is a thin call into vsae.eval.commands
and writes `<name>.json` (+ PNG figures) into --out. Settings with defaults are generated from
the configs of `vsae.eval.eval_config` (`vsae.cli.from_config`); paths are plain options."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from vsae.cli.from_config import config_options, pick
from vsae.cli.options import device_callback, revision_option
from vsae.eval.eval_config import (
    MsConfig,
    NamesConfig,
    PoolingConfig,
    ProbeConfig,
    ReconConfig,
    SharedConfig,
    TopImagesConfig,
)
from vsae.eval.explain_config import ExplainConfig

_POOL = config_options(PoolingConfig)
_OUT = click.option("--out", required=True, type=click.Path(), help="Output directory (JSON + PNG).")


def _out_json(name: str) -> Callable[[F], F]:
    """--out of a command that writes no figure (its help must not promise one)."""
    return click.option(
        "--out", required=True, type=click.Path(), help=f"Output directory ({name}.json; no figure)."
    )


_QUIET = click.option("--quiet", is_flag=True, help="No progress bars.")
_FORCE = click.option(
    "--force",
    is_flag=True,
    help="Apply the SAE even where its training rows' hook or token selection (its provenance) "
    "differs from the store's or the splice's (a warning instead of an error).",
)


F = TypeVar("F", bound=Callable[..., Any])


def _latent_opts(f: F) -> F:
    f = click.option("--latents", type=click.Path(), help="Sparse latents store (from `vsae encode`).")(f)
    f = revision_option("sae_path")(f)
    f = click.option(
        "--sae",
        "sae_path",
        type=click.Path(),
        help="SAE (run directory, checkpoint or hub id; encodes --acts on the fly).",
    )(f)
    f = click.option("--acts", type=click.Path(), help="Activation store (or .npy) at the SAE's hook.")(f)
    return f


def _echo(res: dict, keys: tuple[str, ...]) -> None:
    from vsae.eval.write_json import jsonable

    click.echo(json.dumps(jsonable({k: res[k] for k in keys if k in res}), indent=1, default=str))


@click.group("eval")
def eval_group() -> None:
    """Evaluation metrics: recon, ms, top-images, uniqueness, hierarchy, probe, ood, names, explain, shared."""


@eval_group.command()
@click.option("--acts", required=True, type=click.Path(), help="Held-out activation store.")
@click.option("--sae", "sae_path", required=True, type=click.Path(), help="SAE run directory.")
@revision_option("sae_path")
@_OUT
@config_options(ReconConfig, only=("batch_size", "max_rows"))
@click.option("--model", default=None, help="Also splice the reconstruction into this model (id or dir) ...")
@click.option(
    "--data", default=None, type=click.Path(), help="... on these images (folder tree or list file)."
)
@click.option("--split", default=None, help="Split sub-folder of --data.")
@click.option("--hook", default=None, help="Splice hook (default: the store's hook).")
@config_options(ReconConfig, only=("n_images", "prompt", "seed"))
@_FORCE
@_QUIET
def recon(
    acts: str,
    sae_path: str,
    out: str,
    model: str | None,
    data: str | None,
    split: str | None,
    hook: str | None,
    force: bool,
    quiet: bool,
    **fields: Any,
) -> None:
    """MSE, FVU, L0, dead/dense fractions and firing frequencies on a held-out store; with --model
    and --data also the downstream effect of splicing decode(encode(x)) in at the hook (final-
    embedding cosine; top-1 agreement, top-5 overlap and KL divergence of the output distribution
    of a classifier's logits or CLIP's zero-shot logits; with labels, accuracy and loss recovered)."""
    import functools

    from vsae.errors import VsaeError
    from vsae.eval.commands import run_recon

    cfg = ReconConfig(**pick(ReconConfig, fields))
    if (model is None) != (data is None):
        raise VsaeError("the splice needs both --model and --data")

    splice = None
    if model is not None and data is not None:
        from vsae.steer.reconstruction import splice_metrics

        splice = functools.partial(
            splice_metrics,
            model,
            data,
            split=split,
            n_images=cfg.n_images,
            prompt=cfg.prompt,
            progress=not quiet,
            seed=cfg.seed,
            force=force,
        )
    res = run_recon(
        acts,
        sae_path,
        out,
        cfg.batch_size,
        cfg.max_rows,
        progress=not quiet,
        splice=splice,
        hook=hook,
        seed=cfg.seed,
        force=force,
    ).to_json()
    _echo(
        res,
        (
            "n_rows",
            "rows",
            "mse",
            "fvu",
            "explained_variance",
            "l0",
            "dead_fraction",
            "dense_fraction",
            "splice",
        ),
    )


@eval_group.command()
@_latent_opts
@click.option(
    "--embeddings",
    type=click.Path(),
    default=None,
    help="Similarity embeddings: a store (e.g. `vsae extract --hook embed` of a similarity "
    "model over the same images) or a .npy/.safetensors with one row per image.",
)
@click.option(
    "--embed-model",
    default=None,
    help="Or: compute them with this image model (id/dir; hook `embed`) over the images of --acts.",
)
@click.option(
    "--embed-cache",
    type=click.Path(),
    default=None,
    help="Store for --embed-model's embeddings (reused if present; default OUT/similarity-embeddings).",
)
@_OUT
@config_options(MsConfig)
@_POOL
@_FORCE
@_QUIET
def ms(
    acts: str,
    sae_path: str,
    latents: str,
    embeddings: str | None,
    embed_model: str | None,
    embed_cache: str | None,
    out: str,
    raw: bool,
    pooling: str,
    force: bool,
    quiet: bool,
) -> None:
    """Monosemanticity Score of SAE latents and of the raw neurons (Pach et al.)."""
    from vsae.eval.commands import run_ms

    res = run_ms(
        embeddings,
        out,
        acts,
        sae_path,
        latents,
        pooling,
        raw,
        progress=not quiet,
        embed_model=embed_model,
        embed_cache=embed_cache,
        force=force,
    ).to_json()
    for k in ("sae", "raw"):
        if k in res:
            r = res[k]
            click.echo(
                f"{k}: MS {r['mean']:.4f} +- {r['std']:.4f} over {r['n_scored']} of {r['n_latents']} "
                f"({r['n_dead']} dead), per-image activation: {r['pooling']}"
            )
    if res.get("embedding_baseline") is not None:
        click.echo(
            f"embedding baseline (mean pairwise cosine of the images' embeddings, the MS of a unit "
            f"firing equally on all): {res['embedding_baseline']:.4f}"
        )


@eval_group.command("top-images")
@_latent_opts
@click.option(
    "--out",
    required=True,
    type=click.Path(),
    help="Output directory: top_images.json and top_images.safetensors (image ids and values per latent).",
)
@config_options(TopImagesConfig)
@_POOL
@_FORCE
@_QUIET
def top_images(
    acts: str, sae_path: str, latents: str, out: str, k: int, pooling: str, force: bool, quiet: bool
) -> None:
    """Highest-activating images per latent, with the worst (k-th) value."""
    from vsae.eval.commands import run_top_images

    res = run_top_images(out, acts, sae_path, latents, k, pooling, progress=not quiet, force=force).to_json()
    _echo(res, ("k", "n_images", "n_latents", "n_excluded_worst_zero", "worst_value_mean", "file"))


@eval_group.command()
@click.option(
    "--top-images", "top", required=True, type=click.Path(), help="Output dir (or file) of `eval top-images`."
)
@_out_json("uniqueness")
def uniqueness(top: str, out: str) -> None:
    """Jaccard overlap of the top-image sets of all pairs of non-excluded latents."""
    from vsae.eval.commands import run_uniqueness

    _echo(
        run_uniqueness(top, out).to_json(),
        ("n_latents", "n_excluded", "n_pairs", "pairs_above", "max_jaccard"),
    )


@eval_group.command()
@click.option("--top-images", "top", required=True, type=click.Path())
@click.option(
    "--table",
    required=True,
    type=click.Path(),
    help="The store the top images index (its images.json gives the labels).",
)
@_OUT
@click.option(
    "--taxonomy",
    type=click.Path(),
    help="Class -> path file (.json or .csv), or `world-colour`: the shapes world's colour taxonomy "
    "(colour family -> colour), images labelled by their colour in --attributes.",
)
@click.option("--inat", is_flag=True, help="Parse iNaturalist folder names.")
@click.option(
    "--wordnet",
    type=click.Path(),
    default=None,
    help="WordNet 3.0 directory for ImageNet wnids (Debian wordnet-base: /usr/share/wordnet).",
)
@click.option("--sae", "sae_path", type=click.Path(), help="SAE run (its Matryoshka groups).")
@revision_option("sae_path")
@click.option("--groups", default=None, help="Matryoshka group fractions, e.g. 0.0625,0.125,0.25,0.5625.")
@click.option(
    "--attributes",
    type=click.Path(),
    default=None,
    help="attributes.json of the images, for --taxonomy world-colour "
    "[default: DATA/attributes.json of the store's data].",
)
def hierarchy(
    top: str,
    table: str,
    out: str,
    taxonomy: str,
    inat: bool,
    wordnet: str | None,
    sae_path: str,
    groups: str | None,
    attributes: str | None,
) -> None:
    """LCA depth per Matryoshka group and the ontology figures (project definition)."""
    from vsae.errors import VsaeError
    from vsae.eval.commands import run_hierarchy

    try:
        g = [float(x) for x in groups.split(",")] if groups else None
    except ValueError:
        raise VsaeError(f"--groups {groups!r}: give comma-separated fractions") from None
    res = run_hierarchy(top, table, out, taxonomy, inat, wordnet, sae_path, g, attributes).to_json()
    summary = {
        "taxonomy": res["taxonomy"],
        "depth_per_group": res["depth_per_group"],
        "ontological_coverage": res["ontology"]["ontological_coverage"],
        "mean_lch_height": res["ontology"]["mean_height"],
    }
    _echo(summary, tuple(summary))


def _named(pairs: tuple[str, ...]) -> list[tuple[str, str]]:
    from vsae.errors import VsaeError

    out = []
    for p in pairs:
        if "=" not in p:
            raise VsaeError(f"{p!r}: give NAME=STORE")
        n, path = p.split("=", 1)
        out.append((n, path))
    return out


@eval_group.command()
@click.option("--train", required=True, type=click.Path(), help="In-distribution train store (labelled).")
@click.option("--eval", "evals", multiple=True, required=True, help="NAME=STORE, e.g. test=... shift=...")
@click.option("--sae", "sae_path", required=True, type=click.Path())
@revision_option("sae_path")
@_out_json("probe")
@_POOL
@config_options(ProbeConfig, only=("c", "max_iter", "standardize"))
@_FORCE
def probe(
    train: str,
    evals: tuple[str, ...],
    sae_path: str,
    out: str,
    pooling: str,
    c: float,
    max_iter: int,
    standardize: bool,
    force: bool,
) -> None:
    """Logistic-regression probes on SAE latents vs raw activations (Olson et al.). Features are
    standardised with train-split statistics first (raw: centred and scaled; SAE latents: scaled
    only, they stay sparse); --no-standardize fits on them as they are."""
    from vsae.eval.commands import run_probe

    rep = run_probe(train, _named(evals), sae_path, out, pooling, c, max_iter, standardize, force)
    _echo(rep.to_json(), ("accuracy", "standardization"))


@eval_group.command()
@click.option("--in", "in_dist", required=True, type=click.Path(), help="In-distribution test store.")
@click.option("--ood", multiple=True, required=True, help="NAME=STORE of an OOD split (repeatable).")
@click.option("--sae", "sae_path", required=True, type=click.Path())
@revision_option("sae_path")
@_OUT
@_POOL
@_FORCE
def ood(in_dist: str, ood: tuple[str, ...], sae_path: str, out: str, pooling: str, force: bool) -> None:
    """OOD detection by reconstruction error / latent sum / latent max: AUROC, FPR@95%TPR."""
    from vsae.eval.commands import run_ood

    rep = run_ood(in_dist, _named(ood), sae_path, out, pooling, force)
    _echo(rep.to_json(), ("n_in_distribution", "splits"))


@eval_group.command()
@click.option("--top-images", "top", required=True, type=click.Path())
@click.option(
    "--image-embeddings",
    required=True,
    type=click.Path(),
    help="Aligned image embeddings (store of the CLIP `embed` hook, or a file with one row per image).",
)
@click.option("--words", required=True, type=click.Path(), help="Vocabulary: one concept word per line.")
@_out_json("names")
@click.option("--text-model", default=None, help="CLIP model id/dir whose text tower embeds the prompts.")
@click.option("--word-embeddings", type=click.Path(), default=None, help="Precomputed word embeddings file.")
@click.option(
    "--table", type=click.Path(), default=None, help="Store with images.json, for agreement with labels."
)
@config_options(NamesConfig)
@click.option(
    "--attributes",
    type=click.Path(),
    default=None,
    help="attributes.json of the --table images (ground truth for the agreement) "
    "[default: DATA/attributes.json of the store's data, if there is one].",
)
def names(
    top: str,
    image_embeddings: str,
    words: str,
    out: str,
    text_model: str | None,
    word_embeddings: str | None,
    table: str | None,
    prompt: str,
    attributes: str | None,
) -> None:
    """Name latents by the best-matching word for the mean embedding of their top images; with
    --table and ground-truth attributes, how many names agree (the name's attribute is the purest
    one of the top images and the word its most common value)."""
    from vsae.eval.commands import run_names

    res = run_names(
        top, image_embeddings, words, out, text_model, word_embeddings, table, prompt, attributes
    ).to_json()
    n = [x for x in res["names"] if x is not None]
    ag = res.get("agreement")
    keys = ("n_named", "n_agree", "agreement", "n_wrong_value", "n_not_purest", "n_no_attribute")
    summary = {
        "n_named": len(n),
        "first": res["names"][:10],
        "agreement": {k: ag[k] for k in keys} if ag else None,
        "class_match": res.get("class_match"),
    }
    _echo(summary, tuple(summary))


@eval_group.command()
@click.option(
    "--acts",
    "acts",
    multiple=True,
    required=True,
    type=click.Path(),
    help="Store from `vsae extract-mllm` (image + text rows); repeat, one per layer.",
)
@click.option(
    "--sae",
    "saes",
    multiple=True,
    required=True,
    type=click.Path(),
    help="SAE run trained on that layer; repeat, in the order of --acts.",
)
@revision_option("saes")
@_OUT
@click.option(
    "--attributes",
    type=click.Path(),
    default=None,
    help="attributes.json of the images (ground truth) [default: DATA/attributes.json of the store's data].",
)
@config_options(
    SharedConfig, only=("top_k", "seed", "batch_size", "auroc", "min_fires", "alpha", "probe_c", "probe_rows")
)
@config_options(SharedConfig, only=("device",), overrides={"device": {"callback": device_callback}})
@_QUIET
def shared(
    acts: tuple[str, ...], saes: tuple[str, ...], out: str, attributes: str | None, quiet: bool, **fields: Any
) -> None:
    """Shared vision/language latents of an SAE on a LLaVA language model (Olson et al.): per layer
    the fraction of live latents with 0.2 <= d_img/(d_img+d_txt) <= 0.8, the histogram of that
    ratio, and whether shared latents mean the same attribute value in both modalities."""
    from vsae.errors import VsaeError
    from vsae.eval.shared import run_shared

    if len(acts) != len(saes):
        raise VsaeError(
            f"{len(acts)} --acts but {len(saes)} --sae; give one SAE per store, in the same order"
        )
    cfg = SharedConfig(**pick(SharedConfig, fields))
    if cfg.top_k < 1 or cfg.batch_size < 1 or cfg.min_fires < 1:
        raise VsaeError("--top-k, --batch-size and --min-fires must be at least 1")
    if not (0.5 < cfg.auroc <= 1 and 0 < cfg.alpha < 1):
        raise VsaeError("--auroc must be in (0.5, 1] and --alpha in (0, 1)")
    res = run_shared(list(zip(acts, saes)), out, cfg, attributes, progress=not quiet).to_json()
    keys = ("n_live", "n_shared", "shared_fraction", "agreement", "random_agreement", "n_scored")
    sel = ("found", "n_shared", "n_image_selective", "p_value", "min_detectable_rate")
    _echo(
        {
            h: {
                **{k: L.get(k) for k in keys},
                **({"selectivity": {k: L["selectivity"][k] for k in sel}} if "selectivity" in L else {}),
            }
            for h, L in res["layers"].items()
        },
        tuple(res["layers"]),
    )


@eval_group.command()
@_latent_opts
@click.option(
    "--words",
    required=True,
    type=click.Path(),
    help="Vocabulary: a text file with one word per line, or JSON {slot: [words]} filling the templates' {slot}.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(),
    help="Output directory: explanations.json, explanations.safetensors (concept-search vectors).",
)
@click.option(
    "--judge-clip",
    default=None,
    help="CLIP (id/dir) whose image-text similarity judges the phrases [default: the store's model, "
    "when it has a text tower].",
)
@click.option(
    "--image-embeddings",
    type=click.Path(),
    default=None,
    help="The judge's image embeddings (store of its `embed` hook over the same images, or a file with "
    "one row per image) [default: computed into OUT/judge-embeddings].",
)
@click.option("--table", type=click.Path(), default=None, help="Store with images.json, for ground truth.")
@click.option(
    "--attributes",
    type=click.Path(),
    default=None,
    help="attributes.json of the --table images [default: DATA/attributes.json of the store's data].",
)
@click.option(
    "--explainer-model",
    default=None,
    help="Multimodal LLM (id/dir, e.g. the world's tiny LLaVA) of --explainer mllm.",
)
@config_options(ExplainConfig, only=tuple(f for f in ExplainConfig.__dataclass_fields__ if f != "templates"))
@_POOL
@_FORCE
@_QUIET
def explain(
    acts: str | None,
    sae_path: str | None,
    latents: str | None,
    words: str,
    out: str,
    judge_clip: str | None,
    image_embeddings: str | None,
    table: str | None,
    attributes: str | None,
    explainer_model: str | None,
    pooling: str,
    force: bool,
    quiet: bool,
    **fields: Any,
) -> None:
    """Explain each live latent in words (an explainer shown its top vs contrast images) and score
    every phrase without ground truth: detection AUROC of a CLIP judge on held-out top vs random
    images, beside a shuffled-phrase control and the vocabulary names; with --table and attributes,
    agreement with what the top images share."""
    from vsae.errors import VsaeError
    from vsae.eval.explain_run import run_explain

    cfg = ExplainConfig(**pick(ExplainConfig, fields))
    cfg.check()
    ask = None
    if cfg.explainer == "mllm":
        if explainer_model is None:
            raise VsaeError("--explainer mllm needs --explainer-model (a multimodal LLM id/dir)")
        ask = _mllm_ask(explainer_model, cfg.max_new_tokens)
    elif explainer_model is not None:
        raise VsaeError(f"--explainer-model is for --explainer mllm, not {cfg.explainer}")
    res = run_explain(
        out,
        acts,
        sae_path,
        latents,
        words,
        cfg,
        pooling,
        judge_clip,
        image_embeddings,
        table,
        attributes,
        ask,
        progress=not quiet,
        force=force,
    )
    keys = ("explainer", "n_explained", "n_phrased", "detection", "controls", "ground_truth")
    summ = {k: res[k] for k in keys if k in res}
    for d in [summ.get("detection"), *(summ.get("controls") or {}).values()]:
        if isinstance(d, dict):
            d.pop("histogram", None)
    _echo(summ, tuple(summ))


def _mllm_ask(model_id: str, max_new_tokens: int) -> Callable[[Any, str], list[str]]:
    """`vsae.steer.mllm.ask` bound to a loaded multimodal LLM (the `mllm` explainer's answers)."""
    from transformers import AutoProcessor

    import vsae.models
    from vsae.errors import VsaeError
    from vsae.models.families.mllm import is_mllm
    from vsae.steer.mllm import ask

    lm = vsae.models.load(model_id)
    if not is_mllm(lm.family):
        raise VsaeError(f"--explainer-model {model_id} is a {lm.family} model, not a multimodal LLM")
    model = lm.full_model.eval()
    try:
        processor = AutoProcessor.from_pretrained(str(model_id))
    except (OSError, ValueError) as e:
        raise VsaeError(f"cannot load the processor of {model_id} ({str(e).splitlines()[0][:120]})") from None
    return lambda images, question: ask(model, processor, list(images), question, max_new_tokens)
