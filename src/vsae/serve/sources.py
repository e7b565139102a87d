"""What `vsae serve` serves: SAEs with the activation store and images each one explains.

Either a `vsae demo` output directory (every SAE it trained, over the test split, with the MS and
names of its results.json) or one explicit (activation store, SAE run, images) triple.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from vsae.errors import VsaeError, read_json, regular_file
from vsae.sae.hub_ids import looks_like_hub_id

SPLIT = "test"  # the demo evaluates (MS, names) on its test split; the browser shows the same rows
STEER_SPLIT = "train"  # the steering SAE is browsed on the split it was trained on
STEER_IMAGES = 2000  # images of the steering SAE's store: 2,000 x 64 patch tokens = 18 MB (float16)


@dataclass(frozen=True)
class SaeSource:
    """One SAE to browse.

    Attributes
    ----------
    id: short name shown and used in URLs (e.g. ``resid.2/matryoshka-x8-k8``).
    sae_dir: the SAE run directory (`vsae train` output).
    acts: the activation store whose rows the SAE encodes (its images.json locates the images).
    images_root: the image folder tree root (None: the root recorded in the store's images.json).
    ms_F: Monosemanticity Score per latent (NaN where not scored), or None when unknown.
    names: latent names (None where unnamed), or None; name_scores: their match scores.
    warning: shown on every page of this SAE (e.g. a hook mismatch served with ``--force``).
    confine: every image file served must resolve inside this folder (``vsae serve DIR``: DIR), or
        None (explicit flags: the folder the user named).
    explanations: the `vsae eval explain` output directory of this SAE (`vsae.serve.explanations`), or None.
    """

    id: str
    sae_dir: Path
    acts: Path
    images_root: Path | None = None
    ms_F: np.ndarray | None = None
    names: list[str | None] | None = None
    name_scores: list[float | None] | None = None
    warning: str | None = None
    confine: Path | None = None
    explanations: Path | None = None


@dataclass(frozen=True)
class SteerSource:
    """The LLaVA and SAE of the steering playground (None: the shipped tiny LLaVA and its SAE).

    steer_results: a `vsae steer` results.json whose latent table names suggested latents.
    diffusion_results: a diffusion-steering results.json (the demo's ``diffusion/``) whose
      per-latent table suggests latents of the text-encoder SAE.
    """

    llava: Path | None = None
    sae_dir: Path | None = None
    steer_results: Path | None = None
    diffusion_results: Path | None = None


@dataclass(frozen=True)
class SteerImages:
    """The images the steering SAE is browsed on, and where its store is cached.

    Attributes
    ----------
    root: image folder tree (a `vsae demo` output's ``world``).
    split: its split sub-folder (``train``: the split the SAE was trained on), or None.
    cache: folder the store is written under (one sub-folder per set-up).
    n: at most this many images, a seeded class-stratified sample (`vsae extract --max-images`).
    seed: the sample's seed.
    sim: a similarity-encoder store of every image of root/split in source order (one row per
        image), for MS; None: no MS.
    """

    root: Path
    split: str | None
    cache: Path
    n: int = STEER_IMAGES
    seed: int = 0
    sim: Path | None = None


@dataclass(frozen=True)
class Served:
    """Everything one server shows: the SAEs (first = default) and the steering set-up;
    `steer_images`: the images the steering SAE is browsed on (None: those of the first SAE's
    store, cached under ~/.cache/vsae/serve; `vsae.serve.steering_store`)."""

    saes: tuple[SaeSource, ...]
    steer: SteerSource = field(default_factory=SteerSource)
    title: str = "vsae latent browser"
    steer_images: SteerImages | None = None


def _ms_names(results: dict, hook: str, name: str) -> tuple[np.ndarray | None, list | None, list | None]:
    s = results.get("layers", {}).get(hook, {}).get("saes", {}).get(name, {})
    ms = s.get("ms_per_latent")
    nm = s.get("names") or {}
    ms_F = None if ms is None else np.array([np.nan if v is None else v for v in ms], dtype=np.float64)
    return ms_F, nm.get("per_latent"), nm.get("match_scores")


def inside(root: Path, p: Path, what: str) -> Path:
    """`p` if it resolves (symlinks followed) to a path inside the served directory `root`, else a
    one-line VsaeError: names in a results.json are data, never a way out of the directory."""
    r = p.resolve()
    if not r.is_relative_to(root.resolve()):
        raise VsaeError(
            f"{what} resolves to {str(r)[:120]}, outside the served directory {root}; vsae serve "
            "reads only files inside it (is its results.json from `vsae demo`?)"
        )
    return p


def from_demo(path: str | Path) -> Served:
    """Every SAE of a `vsae demo` output directory, the featured one first. Every path read
    (runs, stores, images, steering results) is confined to that directory."""
    root = Path(path)
    res_p = inside(root, root / "results.json", "results.json")
    if not res_p.is_file():
        raise VsaeError(f"{root} has no results.json; give a `vsae demo --out` directory, or --acts/--sae")
    try:
        results = json.loads(res_p.read_text())
    except json.JSONDecodeError as e:
        raise VsaeError(f"{res_p} is not valid JSON ({e}); re-run `vsae demo`") from None
    featured = results.get("featured") or []
    saes = []
    world = root / "world"
    images = inside(root, world, "the images") if world.is_dir() else None
    for hook, layer in results.get("layers", {}).items():
        for name in layer.get("saes", {}):
            run = inside(
                root, root / "runs" / hook / name, f"the SAE run {hook[:80]}/{name[:80]} of results.json"
            )
            acts = inside(
                root, root / "stores" / "clip" / SPLIT / hook, f"the store of {hook[:80]} of results.json"
            )
            if not (run.is_dir() and acts.is_dir()):
                continue
            ms_F, names, scores = _ms_names(results, hook, name)
            src = SaeSource(f"{hook}/{name}", run, acts, images, ms_F, names, scores, confine=root)
            saes.append(replace(src, explanations=_explanations(root, hook, name)))
    if not saes:
        raise VsaeError(f"no SAE runs with test stores under {root}; was `vsae demo` run to the end?")
    if len(featured) == 3:
        want = f"{featured[0]}/{featured[1]}-x{featured[2]}"
        saes.sort(key=lambda s: not s.id.startswith(want + "-"))
    steer = inside(root, root / "steering" / "results.json", "the steering results")
    diff = inside(root, root / "diffusion" / "results.json", "the diffusion results")
    return Served(
        tuple(saes),
        SteerSource(
            steer_results=steer if steer.is_file() else None,
            diffusion_results=diff if diff.is_file() else None,
        ),
        steer_images=_demo_steer_images(root, images),
    )


def _demo_steer_images(root: Path, world: Path | None) -> SteerImages | None:
    """The steering SAE's images in a demo output: a seeded sample of world/train (the split it was
    trained on; else the served split), MS from the demo's similarity store of that split, the
    store cached under ``serve-cache/``."""
    if world is None:
        return None
    split = STEER_SPLIT if (world / STEER_SPLIT).is_dir() else SPLIT
    sim = inside(root, root / "stores" / "simenc" / split, "the similarity store")
    return SteerImages(world, split, root / "serve-cache", sim=sim if sim.is_dir() else None)


def _explanations(root: Path, hook: str, name: str) -> Path | None:
    """OUT/explain/<hook>/<run>/ of a demo (`vsae.demo.explain_finding`), if it has explanations.json."""
    ex = inside(root, root / "explain" / hook / name, "the explanations")
    return ex if (ex / "explanations.json").is_file() else None


def _json_arg(path: str | Path, fname: str) -> dict:
    p = Path(path)
    p = p / fname if p.is_dir() else p
    obj = read_json(p, "eval result", "give the --out directory of the `vsae eval` command")
    if not isinstance(obj, dict):
        raise VsaeError(
            f"eval result {p} is not a JSON object; give the --out directory of the `vsae eval` command"
        )
    return obj


def from_flags(
    acts: str | Path,
    sae: str | Path,
    images: str | Path | None = None,
    ms: str | Path | None = None,
    names: str | Path | None = None,
    force: bool = False,
) -> SaeSource:
    """One SAE from explicit paths; `ms`/`names`: outputs of `vsae eval ms` / `vsae eval names`.

    The SAE's provenance hook must be the store's (else its statistics would describe another
    layer); `force` serves a mismatch anyway, with a warning on every page. The id is
    ``<hook>/<run name>``.
    """
    if not Path(acts).exists():
        raise VsaeError(f"--acts: activation store {acts} does not exist")
    if not Path(sae).exists() and not looks_like_hub_id(str(sae)):  # a hub id or known name loads later
        raise VsaeError(f"--sae: SAE run {sae} does not exist")
    sae_hook, store_hook = _hooks(acts, sae)
    warning = None
    if sae_hook and store_hook and sae_hook != store_hook:
        msg = f"the SAE {sae} was trained on {sae_hook} but the store {acts} holds {store_hook}"
        if not force:
            raise VsaeError(f"{msg}; give the store of {sae_hook} (or --force to serve it anyway)")
        warning = f"hook mismatch, served with --force: {msg}; its statistics describe the wrong layer"
    ms_F = None
    if ms is not None:
        from safetensors.numpy import load_file

        p = Path(ms)
        p = p / "ms_scores.safetensors" if p.is_dir() else p
        regular_file(p, "MS scores", "give the `vsae eval ms --out` directory")
        try:
            ms_F = load_file(str(p)).get("sae")
        except Exception as e:  # a missing or foreign file is a user error
            raise VsaeError(f"cannot read MS scores {p} ({e}); give `vsae eval ms --out` directory") from None
        if ms_F is None:
            raise VsaeError(f"{p} has no 'sae' scores; run `vsae eval ms` with --sae")
    nm, sc = None, None
    if names is not None:
        d = _json_arg(names, "names.json")
        nm, sc = d.get("names"), d.get("scores")
    sid = f"{sae_hook or store_hook or '?'}/{Path(sae).resolve().name or 'sae'}"
    return SaeSource(sid, Path(sae), Path(acts), Path(images) if images else None, ms_F, nm, sc, warning)


def _hooks(acts: str | Path, sae: str | Path) -> tuple[str | None, str | None]:
    """(the SAE's provenance hook, the store's hook); None where not recorded."""
    import vsae.sae
    from vsae.store import ActivationStore

    try:
        sae_prov = vsae.sae.load(sae).cfg.provenance or {}
        store_prov = ActivationStore.open(acts).provenance or {}
    except VsaeError:
        raise
    except Exception as e:  # a foreign directory is a user error
        raise VsaeError(
            f"cannot read --acts {acts} / --sae {sae} ({type(e).__name__}: {e})".splitlines()[0]
        ) from None
    return sae_prov.get("hook"), store_prov.get("hook")
