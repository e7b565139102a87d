"""The diffusion steering experiment (Olson et al.): steer a text-to-image model through SAE
latents of its text encoder, measure what changes, and discover latent attributes automatically.

The run is five named steps on one `Setup` (pipeline, SAE, hook, latent statistics, judge):
- `generate`: generation accuracy, held-out prompts' agreement with their images (judge only);
- `steer`: per latent whose text-side word is a judged attribute value (`LatentStats.top_word`),
  or per latent given, the same prompts and noise unsteered and steered, images saved;
- `judge` (inside `steer`): the rate of the target value in images of prompts naming another
  value, steered vs unsteered, how often the prompt's other attributes are preserved, and the
  mean silhouette IoU of the images (is an object still drawn, or has the edit turned the
  image into noise the judge misreads?);
- `discover`: per live latent, the word whose CLIP similarity rises most (`discovery`), checked
  against the attribute value whose judged rate rises most, beside random words;
- `evaluate`: the means over latents, `results.json` and ``index.html``.

The ground truth comes from a `judges.DiffusionJudge` plug-in (the shapes world's, registered
as ``world``); on a pipeline without one (Stable Diffusion) the same code generates, steers and
names, and the ground-truth numbers are ``null``. The generic pieces (generation with the
splice, latent statistics) are `vsae.steer.diffusion_*`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import vsae.sae
from vsae.errors import VsaeError
from vsae.experiments.diffusion_steering import discovery as dd
from vsae.experiments.diffusion_steering.diffusion_config import DiffusionSteerConfig
from vsae.experiments.diffusion_steering.diffusion_report import write_steering_page
from vsae.experiments.diffusion_steering.diffusion_result import (
    RATE_SUMMARY_KEYS,
    DiffusionSteeringResult,
    DiscoveredLatent,
    DiscoveryResult,
    Example,
    GenerationResult,
    LatentSteering,
    RateSummary,
    Reference,
    Specificity,
    SteeringRates,
    SteeringResult,
)
from vsae.experiments.diffusion_steering.judges import (
    DEFAULT_JUDGE,
    DIFFUSION_JUDGES,
    AttributeReader,
    DiffusionJudge,
    find_judge,
)
from vsae.experiments.diffusion_steering.scoring import (
    edit_prompt,
    mean_or_none,
    meets_target,
    reference,
    steering_rates,
    target_latents,
)
from vsae.report.html import image_grid
from vsae.sae.selection import check_splice
from vsae.steer.diffusers_pipeline import EncoderPipe, is_multi_encoder, load_encoder_pipe
from vsae.steer.diffusion_latents import LatentStats, latent_stats, token_word
from vsae.steer.diffusion_pipeline import DiffusionPipe, generate, load_pipe, resolved_sampler
from vsae.steer.edits import LatentEdit
from vsae.steer.intervention import resolve_point
from vsae.store.safe_io import atomic_path, atomic_write_json, writes_to

Say = Callable[..., None]
Target = tuple[int, str | None, int | None]  # (latent, attribute, value index); None: no ground truth


@dataclass
class Setup:
    """What every step works on: the pipeline, the SAE and its hook, the latents' text-side
    statistics, the judge and its reader (None without ground truth), the naming vocabulary and
    CLIP (None: no discovery)."""

    pipe: DiffusionPipe | EncoderPipe
    sae: Any
    sae_dir: str
    hook: str
    cfg: DiffusionSteerConfig
    stats: LatentStats
    judge: DiffusionJudge | None
    reader: AttributeReader | None
    vocab: list[dd.VocabWord]
    scorer: dd.ClipScorer | None
    clip: str | None
    say: Say

    def edit(self, latent: int, strength: float, tokens: torch.Tensor | None = None) -> LatentEdit:
        """The edit of ``latent`` at ``strength`` (clamp / add: times its largest activation), on
        ``tokens`` (a bool mask [B, T]) if given, else on the config's (``word`` -> all)."""
        cfg = self.cfg
        max_act = self.stats.max_act[latent]
        value = strength if cfg.op == "scale" else strength * max(float(max_act), 1e-6)
        where = tokens if tokens is not None else ("all" if cfg.tokens == "word" else cfg.tokens)
        return LatentEdit(latent=int(latent), op=cfg.op, value=value, tokens=where)

    def word_tokens(self, prompts: Sequence[str], words: Sequence[str]) -> torch.Tensor:
        """Bool [B, T]: the tokens of each prompt (padded as `encode_prompts` pads) that spell its
        word ``words[b]`` (``tokens="word"``: the edit stays on the prompt's attribute word)."""
        tok = self.pipe.tokenizer
        ids = tok(list(prompts), padding="max_length", max_length=tok.model_max_length, truncation=True)
        rows = ids["input_ids"]
        mask = torch.zeros(len(rows), len(rows[0]), dtype=torch.bool)
        for b, (row, w) in enumerate(zip(rows, words)):
            for t, i in enumerate(row):
                mask[b, t] = token_word(tok.convert_ids_to_tokens(i)) == w
        return mask

    def images(self, prompts: Sequence[str], edit: LatentEdit | None = None) -> np.ndarray:
        """uint8 [N, H, W, 3]: ``prompts`` generated with the sampler's noise, steered by ``edit``
        (SDXL, SD3, FLUX: by the pipeline's own sampler, `EncoderPipe.generate`)."""
        if isinstance(self.pipe, EncoderPipe):
            if edit is None:
                return self.pipe.generate(list(prompts), self.cfg.sampler)
            return self.pipe.generate(
                list(prompts), self.cfg.sampler, sae=self.sae, hook=self.hook, edits=[edit]
            )
        if edit is None:
            return generate(self.pipe, list(prompts), self.cfg.sampler)
        return generate(
            self.pipe, list(prompts), self.cfg.sampler, sae=self.sae, hook=self.hook, edits=[edit]
        )

    def iou(self, images_NHWC: np.ndarray) -> np.ndarray | None:
        return self.judge.silhouette_iou(images_NHWC) if self.judge is not None else None


def _resolve_hook(
    pipe: DiffusionPipe | EncoderPipe, sae: Any, sae_dir: str, cfg: DiffusionSteerConfig
) -> str:
    hook = cfg.hook or (getattr(sae.cfg, "provenance", None) or {}).get("hook")
    if not hook:
        raise VsaeError("the SAE does not record its hook; give --hook (e.g. resid.-1)")
    point, _ = resolve_point(pipe.text, hook)  # unknown hook -> one-line error before any work
    check_splice(
        sae.cfg.provenance,
        point.name,
        sae=str(sae_dir),
        what="steering",
        force=cfg.force,
        canonical=lambda h: resolve_point(pipe.text, h)[0].name,
    )
    return str(hook)


def sae_tower(sae: Any) -> str | None:
    """The pipeline text encoder an SAE was trained on, from its provenance (``tower``, else the
    ``subfolder`` it names), if it is one of `TOWERS`'."""
    from vsae.models.families.pipeline_text import TOWERS

    prov = getattr(sae.cfg, "provenance", None) or {}
    if prov.get("tower") in TOWERS:
        return str(prov["tower"])
    by_sub = {sub: t for t, (sub, _) in TOWERS.items()}
    return by_sub.get(str(prov.get("subfolder")))


def load_steered_pipe(
    pipeline: str, sae: Any, sae_dir: str, tower: str | None, cfg: DiffusionSteerConfig, **kw: Any
) -> DiffusionPipe | EncoderPipe:
    """The pipeline to steer: SDXL, SD3 and FLUX (`is_multi_encoder`) with the encoder ``tower``
    (default: the SAE's, else ``text``) edited; Stable Diffusion 1.x / 2.x and the world's model
    (one text encoder) as `DiffusionPipe`. ``kw``: device, dtype, size."""
    size = kw.pop("size", None)
    if not is_multi_encoder(pipeline):
        if tower not in (None, "text"):
            raise VsaeError(
                f"--tower {tower}: {pipeline} has one text encoder (tower text); --tower picks one of "
                "SDXL's, SD3's or FLUX's"
            )
        return load_pipe(pipeline, **kw)
    from vsae.models.families.pipeline_text import encoder_towers

    trained = sae_tower(sae)
    use = tower or trained or "text"
    have = encoder_towers(pipeline) if Path(pipeline).is_dir() else None  # checked before loading
    if have is not None and use not in have:
        raise VsaeError(f"{pipeline} has no text encoder tower {use!r}; valid towers: {', '.join(have)}")
    if tower is not None and trained is not None and tower != trained:
        msg = f"SAE {sae_dir} was trained on text encoder tower {trained} but --tower is {tower}"
        if not cfg.force:
            raise VsaeError(f"{msg}; give --tower {trained} (or --force to apply it anyway)")
        print(f"warning: {msg} (applied anyway: --force)", file=sys.stderr)
    return load_encoder_pipe(pipeline, use, size=size, **kw)


def prepare(
    pipeline: str,
    sae_dir: str,
    cfg: DiffusionSteerConfig,
    *,
    clip: str | None,
    vocabulary: tuple[str, ...],
    judge_name: str | None,
    device: str,
    dtype: str,
    say: Say,
    tower: str | None = None,
    size: int | None = None,
) -> Setup:
    """Load the SAE, pipeline, judge and naming CLIP; check the tower, the hook and the splice;
    compute the latents' text-side statistics. Every bad input fails here, before any image is
    generated."""
    sae = vsae.sae.load(sae_dir).to(device)
    pipe = load_steered_pipe(pipeline, sae, str(sae_dir), tower, cfg, device=device, dtype=dtype, size=size)
    hook = _resolve_hook(pipe, sae, sae_dir, cfg)
    judge = find_judge(pipe.provenance, judge_name)
    if judge is not None and isinstance(pipe, EncoderPipe):
        raise VsaeError(
            f"--judge {judge_name}: judges read one-encoder pipelines' images (the shapes world's); "
            f"{pipe.provenance['kind']} runs without one: leave out --judge"
        )
    if judge is None and not cfg.prompts:
        raise VsaeError(
            "give --prompts for a pipeline other than the shapes world's (no world captions to use)"
        )
    vocab = judge.vocabulary() if judge is not None else dd.plain_vocabulary(vocabulary)
    naming_clip = clip or (judge.naming_clip() if judge is not None else None)
    # Loaded before any work: a --clip that cannot be loaded (or holds only pickle weights) fails at once.
    scorer = dd.ClipScorer(naming_clip, device=device) if vocab and naming_clip else None
    corpus = judge.captions(cfg.n_captions, cfg.seed + 1) if judge is not None else list(cfg.prompts)
    stats = latent_stats(pipe.text, pipe.tokenizer, sae, hook, corpus)
    if cfg.latents and max(cfg.latents) >= len(stats.fires):
        raise VsaeError(f"latent {max(cfg.latents)} out of range: the SAE has {len(stats.fires)} latents")
    reader = judge.reader(pipeline) if judge is not None else None
    return Setup(pipe, sae, str(sae_dir), hook, cfg, stats, judge, reader, vocab, scorer, clip, say)


def generation_step(st: Setup) -> GenerationResult:
    """Step 1, generate: agreement of held-out prompts' images with the prompts (judge only)."""
    cfg = st.cfg
    if st.judge is None or st.reader is None or isinstance(st.pipe, EncoderPipe):
        return GenerationResult(n=0, accuracy={"shape": None, "colour": None})
    if not cfg.n_eval:
        return GenerationResult(n=cfg.n_eval, accuracy={"shape": None, "colour": None})
    g = st.judge.generation(st.pipe, st.reader, cfg.n_eval, cfg.seed, cfg.sampler)
    st.say("generation: " + ", ".join(f"{a} {g['generated'][a]:.3f}" for a in st.judge.judged))
    return GenerationResult(cfg.n_eval, g["generated"], g["real"], g["silhouette"]["generated"])


def steering_targets(st: Setup) -> list[Target]:
    """The latents to steer: those given (with the attribute their word names, if judged), else
    up to ``n_latents`` whose top word is a judged attribute value (none without a judge)."""
    cfg, n_sae = st.cfg, len(st.stats.fires)
    targets: list[Target]
    if cfg.latents:
        targets = [(int(f), None, None) for f in cfg.latents]
        if st.judge is not None:
            ta = {f: (a, v) for f, a, v in target_latents(st.stats, n_sae, st.judge)}
            targets = [(f, *ta.get(f, (None, None))) for f, _, _ in targets]
    elif st.judge is not None:
        targets = list(target_latents(st.stats, cfg.n_latents, st.judge))
    else:  # no attribute words to pick by: the most often firing live latents
        order = np.argsort(-st.stats.fires, kind="stable")[: cfg.n_latents]
        targets = [(int(f), None, None) for f in order if st.stats.fires[f] > 0]
    for f, _, _ in targets:
        if not 0 <= f < n_sae:
            raise VsaeError(f"latent {f} out of range: the SAE has {n_sae} latents")
    return targets


@dataclass
class PromptPool:
    """The prompts steering draws from, their judged values (empty without a judge) and the
    unsteered images and readings of each prompt subset (generated once)."""

    prompts: list[str]
    truth: dict[str, np.ndarray]
    cache: dict[tuple[int, ...], tuple[np.ndarray, dict[str, np.ndarray] | None]]

    def pick(self, st: Setup, attribute: str | None, value: int | None) -> tuple[int, ...]:
        """The first ``n_prompts`` prompts (naming another value than the target's, if judged)."""
        n = st.cfg.n_prompts
        if st.judge is not None and attribute is not None:
            return tuple(i for i in range(len(self.prompts)) if self.truth[attribute][i] != value)[:n]
        return tuple(range(min(n, len(self.prompts))))

    def unsteered(self, st: Setup, idx: tuple[int, ...]) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
        if idx not in self.cache:
            ims = st.images([self.prompts[i] for i in idx])
            self.cache[idx] = (ims, _read(st, ims))
        return self.cache[idx]


def _read(st: Setup, images_NHWC: np.ndarray) -> dict[str, np.ndarray] | None:
    if st.reader is None or st.judge is None:
        return None
    return st.reader.predict(images_NHWC, st.judge.judged)


def prompt_pool(st: Setup) -> PromptPool:
    """Held-out prompts of the judge (seed + 2), else the given prompts."""
    cfg = st.cfg
    if st.judge is None:
        return PromptPool(list(cfg.prompts), {}, {})
    prompts, truth = st.judge.heldout(max(8 * cfg.n_prompts, 64), cfg.seed + 2)
    return PromptPool(prompts, truth, {})


def judge_step(
    st: Setup,
    ims_s: np.ndarray,
    pred_u: dict[str, np.ndarray] | None,
    truth: dict[str, np.ndarray],
    target: Target,
    ious: tuple[np.ndarray | None, np.ndarray | None],
) -> SteeringRates | None:
    """Step 3, judge: the steered images' rates against the unsteered ones (None without truth)."""
    _, attr, val = target
    if st.judge is None or pred_u is None or attr is None or val is None:
        return None
    pred_s = _read(st, ims_s)
    assert pred_s is not None
    iou_s, iou_u = ious
    drawn = (
        (iou_s >= st.judge.drawn_iou, iou_u >= st.judge.drawn_iou)
        if iou_s is not None and iou_u is not None
        else (None, None)
    )
    return steering_rates(pred_s, pred_u, truth, attr, val, *drawn)


def reference_step(
    st: Setup,
    prompts: list[str],
    truth: dict[str, np.ndarray],
    target: Target,
    control: int | None,
    tokens: torch.Tensor | None = None,
) -> tuple[Reference | None, Reference | None]:
    """The references of one scored latent on its prompts and noise (issue 23): a random live
    latent clamped the same way, and the prompts with their attribute word replaced by the
    target value's (None without truth)."""
    _, attr, val = target
    if st.judge is None or attr is None or val is None:
        return None, None
    ctrl = None
    if control is not None:
        pred = _read(st, st.images(prompts, st.edit(control, st.cfg.strength, tokens)))
        assert pred is not None
        ctrl = reference(pred, truth, attr, val, latent=control)
    words = st.judge.values(attr)
    edited = [edit_prompt(p, words[int(v)], words[val]) for p, v in zip(prompts, truth[attr])]
    pred = _read(st, st.images(edited))
    assert pred is not None
    return ctrl, reference(pred, truth, attr, val)


def control_latents(st: Setup, targets: Sequence[Target]) -> dict[int, int]:
    """For each target latent, a random live latent that is no target (seeded by ``seed``): the
    control clamped the same way."""
    steered = {f for f, _, _ in targets}
    pool = np.array([f for f in st.stats.live if int(f) not in steered])
    if not len(pool):
        return {}
    rng = np.random.default_rng(st.cfg.seed + 7)
    return {f: int(rng.choice(pool)) for f, _, _ in targets}


def steer_latent(
    st: Setup, pool: PromptPool, target: Target, out: Path, control: int | None = None
) -> tuple[LatentSteering, list[tuple[float, SteeringRates | None]], list[Example]]:
    """Step 2, steer one latent: the same prompts and noise unsteered and steered at ``strength``
    and at each sweep strength, and the references (`reference_step`); its row, the sweep's
    (strength, rates) and the example image."""
    cfg, stats = st.cfg, st.stats
    f, attr, _ = target
    idx = pool.pick(st, attr, target[2])
    ims_u, pred_u = pool.unsteered(st, idx)
    prompts = [pool.prompts[i] for i in idx]
    truth = {a: pool.truth[a][list(idx)] for a in pool.truth}
    iou_u = st.iou(ims_u)
    tokens = None
    if cfg.tokens == "word" and st.judge is not None and attr is not None:
        values = st.judge.values(attr)
        tokens = st.word_tokens(prompts, [values[int(v)] for v in truth[attr]])
    rates: SteeringRates | None = None
    ims_s0 = ims_u  # the images steered at cfg.strength (the loop's first)
    ious: tuple[float | None, float | None] = (None, None)
    examples: list[Example] = []
    sweep: list[tuple[float, SteeringRates | None]] = []
    for s in (cfg.strength, *cfg.sweep):
        ims_s = st.images(prompts, st.edit(f, s, tokens))
        iou_s = st.iou(ims_s)
        r = judge_step(st, ims_s, pred_u, truth, target, (iou_s, iou_u))
        if s == cfg.strength:
            ims_s0 = ims_s
            examples.append(save_example(out, f, stats.top_word[f], prompts, ims_u, ims_s))
            if iou_u is not None and iou_s is not None:  # is an object still drawn?
                ious = (float(iou_u.mean()), float(iou_s.mean()))
            rates = r
        else:
            sweep.append((s, r))
    ctrl, edit = (
        reference_step(st, prompts, truth, target, control, tokens) if rates is not None else (None, None)
    )
    row = LatentSteering(
        latent=f,
        word=stats.top_word[f],
        word_share=float(stats.top_share[f]),
        max_act=float(stats.max_act[f]),
        attribute=attr,
        n_prompts=len(idx),
        iou_baseline=ious[0],
        iou_steered=ious[1],
        rates=rates,
        random_latent=ctrl,
        prompt_edit=edit,
        image_change=image_change(ims_s0, ims_u) if st.judge is None else None,
    )
    st.say(
        f"steer latent {f} ({row.word}): "
        + (f"{rates.target_baseline:.2f} -> {rates.target_steered:.2f}" if rates is not None else "done")
    )
    return row, sweep, examples


def image_change(steered_NHWC: np.ndarray, unsteered_NHWC: np.ndarray) -> float:
    """Mean absolute pixel difference of two image sets (0-1 scale; 0 iff bit-identical)."""
    return float(np.abs(steered_NHWC.astype(np.int16) - unsteered_NHWC.astype(np.int16)).mean() / 255)


def skipped_parts(st: Setup) -> dict[str, str]:
    """What a run without a ground-truth judge cannot measure, and why (``results.json``'s
    ``skipped``; empty with a judge)."""
    if st.judge is not None:
        return {}
    why = f"no ground-truth judge for this pipeline (registered: {', '.join(DIFFUSION_JUDGES.names())})"
    out = {
        "generation": f"{why}: generation accuracy needs one",
        "steering_rates": f"{why}: target rates, preservation and references need one; each latent "
        "reports image_change (steered vs unsteered images) instead",
    }
    if st.scorer is None:
        out["discovery"] = "no --clip and --vocabulary given: latents are not named"
    else:
        out["discovery_agreement"] = f"{why}: CLIP's names are not checked against ground truth"
    if isinstance(st.pipe, EncoderPipe) and st.cfg.eta is not None:
        out["eta"] = "the pipeline's own scheduler samples; --eta applies to DDIM (Stable Diffusion 1.x)"
    return out


def sampler_json(st: Setup) -> dict[str, Any]:
    """The sampling settings a run used (the pipeline's own where the config leaves them unset)."""
    cfg = st.cfg
    if isinstance(st.pipe, EncoderPipe):
        return {
            "guidance": st.pipe.guidance(cfg.guidance),
            "eta": None,
            "steps": cfg.steps,
            "scheduler": type(st.pipe.pipeline.scheduler).__name__,
            "size": st.pipe.size,
        }
    guidance, eta = resolved_sampler(st.pipe, cfg.sampler)
    return {"guidance": guidance, "eta": eta, "steps": cfg.steps}


def summarise(rates: Sequence[SteeringRates]) -> RateSummary:
    """Step 5, evaluate: the mean of each rate over the scored latents."""
    return RateSummary(**{k: mean_or_none([getattr(r, f) for r in rates]) for k, f in RATE_SUMMARY_KEYS})


def steering_step(st: Setup, out: Path) -> tuple[SteeringResult, tuple[Example, ...]]:
    """Step 2, steer (and judge) every target latent; the means over the scored ones."""
    cfg = st.cfg
    pool = prompt_pool(st)
    rows: list[LatentSteering] = []
    examples: list[Example] = []
    sweep_rates: dict[float, list[SteeringRates]] = {s: [] for s in cfg.sweep}
    targets = steering_targets(st)
    controls = control_latents(st, targets) if st.judge is not None else {}
    for target in targets:
        row, sweep, latent_examples = steer_latent(st, pool, target, out, controls.get(target[0]))
        rows.append(row)
        examples.extend(latent_examples)
        for s, r in sweep:
            if r is not None:
                sweep_rates[s].append(r)
    scored = [r.rates for r in rows if r.rates is not None]
    result = SteeringResult(
        op=cfg.op,
        strength=cfg.strength,
        latents=tuple(rows),
        summary=summarise(scored),
        drawn_iou=st.judge.drawn_iou if st.judge is not None else None,
        n_meeting_target=sum(meets_target(r) for r in scored),
        sweep=tuple((s, summarise(rs)) for s, rs in sweep_rates.items()),
        specificity=specificity(rows),
    )
    return result, tuple(examples)


def _mean_reference(refs: Sequence[Reference | None]) -> Reference | None:
    got = [r for r in refs if r is not None]
    if not got or len(got) < len(refs):
        return None
    return Reference(
        target=float(np.mean([r.target for r in got])),
        kept_all=float(np.mean([r.kept_all for r in got])),
        preserved=float(np.mean([r.preserved for r in got])),
    )


def specificity(rows: Sequence[LatentSteering]) -> Specificity | None:
    """Step 5, evaluate specificity (issue 23): the means over the scored latents of the images
    keeping every other attribute, per attribute preservation, and the references."""
    scored = [r for r in rows if r.rates is not None and r.rates.kept_all is not None]
    if not scored:
        return None
    rates = [r.rates for r in scored if r.rates is not None]
    by_attr: dict[str, dict[str, list[float]]] = {}
    for r in rates:
        for a, v in (r.preserved_by_attribute or {}).items():
            d = by_attr.setdefault(a, {"steered": [], "baseline": []})
            d["steered"].append(v)
            d["baseline"].append((r.preserved_by_attribute_baseline or {})[a])
    return Specificity(
        kept_all=float(np.mean([r.kept_all for r in rates])),
        kept_all_baseline=float(np.mean([r.kept_all_baseline for r in rates])),
        preserved_by_attribute={a: {k: float(np.mean(v)) for k, v in d.items()} for a, d in by_attr.items()},
        random_latent=_mean_reference([r.random_latent for r in scored]),
        prompt_edit=_mean_reference([r.prompt_edit for r in scored]),
    )


def _discovery_prompts(st: Setup) -> list[str]:
    cfg = st.cfg
    if st.judge is not None:
        return st.judge.heldout(cfg.discovery_prompts, cfg.seed + 3)[0]
    return list(cfg.prompts)[: cfg.discovery_prompts]


def discovery_step(st: Setup) -> DiscoveryResult:
    """Step 4, discover: name each (sampled) live latent by the word whose CLIP similarity rises
    most when it is boosted; against a judge, the value whose judged rate rises most and the
    agreement of the two, beside random words."""
    cfg, stats, scorer = st.cfg, st.stats, st.scorer
    if scorer is None:
        return DiscoveryResult()
    words_WD = scorer.words(st.vocab)
    live = stats.live
    if cfg.discovery_latents and cfg.discovery_latents < len(live):
        live = np.sort(np.random.default_rng(cfg.seed).choice(live, cfg.discovery_latents, replace=False))
    prompts = _discovery_prompts(st)
    ims_u = st.images(prompts)
    emb_u = scorer.images(ims_u)
    named = st.judge.named if st.judge is not None else ()
    pred_u = st.reader.predict(ims_u, named) if st.reader is not None else None
    found: list[int] = []
    truths: list[int | None] = []
    rows: list[DiscoveredLatent] = []
    for f in live:
        ims_s = st.images(prompts, st.edit(int(f), cfg.strength))
        w, rise = dd.discover(scorer.images(ims_s), emb_u, words_WD)
        t = None
        if st.reader is not None and pred_u is not None:
            change = dd.truth_change(st.reader.predict(ims_s, named), pred_u, st.vocab)
            t = dd.truth_name(change, cfg.min_change)
        found.append(w)
        truths.append(t)
        word = st.vocab[t].word if t is not None else None
        rows.append(DiscoveredLatent(int(f), stats.top_word[f], st.vocab[w].word, float(rise[w]), word))
    agreement = random_agr = n_truth = None
    if st.judge is not None:
        agreement, n_truth = dd.agreement(found, truths)
        random_agr = dd.random_agreement(truths, len(st.vocab), cfg.seed)
    res = DiscoveryResult(True, tuple(rows), agreement, random_agr, n_truth, tuple(w.word for w in st.vocab))
    st.say(f"discovery: {len(found)} latents, agreement {res.agreement} vs random {res.random_agreement}")
    return res


def _config_json(cfg: DiffusionSteerConfig) -> dict[str, Any]:
    return {**asdict(cfg), "tokens": cfg.tokens if isinstance(cfg.tokens, str) else list(cfg.tokens)}


def resolve_pipeline(pipeline: str | None, sae_dir: str | None) -> tuple[str, str]:
    """``pipeline`` and ``sae_dir``, each defaulting to the default judge's shipped one."""
    if pipeline is None or sae_dir is None:
        judge = DIFFUSION_JUDGES.get(DEFAULT_JUDGE)
        pipeline = pipeline or judge.default_pipeline()
        sae_dir = sae_dir or judge.default_sae()
    return pipeline, sae_dir


@writes_to("out_dir")  # one writer per --out: a second steering run into it is refused, naming it
def run_diffusion_steering(
    pipeline: str | None,
    sae_dir: str | None,
    out_dir: str | Path,
    cfg: DiffusionSteerConfig = DiffusionSteerConfig(),
    *,
    clip: str | None = None,
    vocabulary: tuple[str, ...] = (),
    judge: str | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    progress: bool = True,
    tower: str | None = None,
    size: int | None = None,
) -> DiffusionSteeringResult:
    """Run generation accuracy, steering and discovery; write ``out_dir/results.json`` and
    ``out_dir/index.html``; return the result. ``pipeline`` / ``sae_dir`` None: the default
    judge's shipped ones; ``judge``: the registered judge to score with [default: the one the
    pipeline's kind names, if any]; ``tower``: the SDXL / SD3 / FLUX text encoder the SAE edits
    [default: the SAE's own]; ``size``: their image size [default: the pipeline's]."""
    t0 = time.time()
    out = Path(out_dir)
    pipeline, sae_dir = resolve_pipeline(pipeline, sae_dir)
    say: Say = print if progress else (lambda *a, **k: None)
    st = prepare(
        pipeline,
        sae_dir,
        cfg,
        clip=clip,
        vocabulary=vocabulary,
        judge_name=judge,
        device=device,
        dtype=dtype,
        say=say,
        tower=tower,
        size=size,
    )
    generation = generation_step(st)
    steering, examples = steering_step(st, out)
    disc = discovery_step(st)
    res = DiffusionSteeringResult(
        config=_config_json(cfg),
        provenance={**st.pipe.provenance, "sae": str(Path(sae_dir).resolve()), "hook": st.hook, "clip": clip},
        d_sae=int(len(st.stats.fires)),
        live=int(len(st.stats.live)),
        sampler=sampler_json(st),
        generation=generation,
        steering=steering,
        discovery=disc,
        examples=examples,
        seconds=round(time.time() - t0, 1),
        skipped=skipped_parts(st),
    )
    out.mkdir(parents=True, exist_ok=True)
    js = res.to_json()
    atomic_write_json(out / "results.json", js, indent=2)
    write_steering_page(js, out, out / "index.html")
    return res


def save_example(
    out: Path, latent: int, word: str, prompts: Sequence[str], ims_u: np.ndarray, ims_s: np.ndarray
) -> Example:
    """Write the first 8 prompts' unsteered (top row) and steered (bottom row) images as one PNG."""
    n = min(8, len(prompts))
    (out / "examples").mkdir(parents=True, exist_ok=True)
    name = f"examples/latent_{latent}.png"
    with atomic_path(out / name) as tmp:
        image_grid(list(ims_u[:n]) + list(ims_s[:n]), cols=n, scale=3).save(tmp, format="PNG")
    return Example(int(latent), f"latent {latent} ({word})", tuple(prompts[:n]), name)
