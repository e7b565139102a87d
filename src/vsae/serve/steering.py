"""The steering playground: one latent edit, the LLaVA's answer with and without it.

Pach et al.'s intervention (clamp an SAE latent in the vision encoder, keep the SAE error term;
``vsae.steer.intervene``), one image and one question at a time. Generated images steered vs
unsteered come from a `DiffusionSteer` hook when one is available (see `diffusion_hook`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from vsae.errors import VsaeError
from vsae.serve.sources import SteerSource
from vsae.steer.edits import OPS, LatentEdit
from vsae.steer.intervention import intervene
from vsae.steer.mllm import ask, default_hook, pooled_latents
from vsae.steer.steer_config import STEERING_QUESTION

MAX_QUESTION = 300
MAX_INSPECT = 256  # served images the steering SAE's latents are computed on, for inspection


class DiffusionSteer(Protocol):
    """Hook point for steering a text-to-image model with a latent edit.

    Called as ``hook(prompt, latent, op, value, seed)``; returns (unsteered, steered) PIL images.
    ``n_latents`` is the size of the dictionary it edits. An optional ``sae_dir`` attribute (the
    SAE's directory) lets a served SAE of the same directory link its latents to the diffusion panel.
    """

    @property
    def n_latents(self) -> int:
        """The size of the dictionary it edits."""
        ...

    def __call__(
        self, prompt: str, latent: int, op: str, value: float, seed: int
    ) -> tuple[Image.Image, Image.Image]: ...


class PipelineDiffusion:
    """`DiffusionSteer` over `vsae.steer.diffusion_pipeline`: a text-to-image pipeline (the shapes
    world's tiny one or a Stable Diffusion directory) steered through an SAE on its text encoder
    (Olson et al.), loaded on the first call. Unsteered and steered images share prompt and noise.
    """

    def __init__(
        self,
        pipeline: str | Path,
        sae_dir: str | Path,
        hook: str | None = None,
        steps: int = 20,
        guidance: float | None = None,
    ):
        self.pipeline, self.sae_dir, self.hook = str(pipeline), str(sae_dir), hook
        self.steps, self.guidance = steps, guidance
        self._loaded: tuple | None = None
        self._lock = threading.Lock()

    def _load(self) -> tuple:
        with self._lock:
            if self._loaded is None:
                import vsae.sae
                from vsae.steer.diffusion_pipeline import load_pipe

                pipe = load_pipe(self.pipeline)
                sae = vsae.sae.load(self.sae_dir).eval()
                hook = self.hook or (getattr(sae.cfg, "provenance", None) or {}).get("hook")
                if not hook:
                    raise VsaeError(f"the SAE {self.sae_dir} does not record its hook; give the hook")
                self._loaded = (pipe, sae, hook)
            return self._loaded

    @property
    def n_latents(self) -> int:
        """The SAE's dictionary size (loads the pipeline)."""
        return int(self._load()[1].cfg.d_sae)

    def __call__(
        self, prompt: str, latent: int, op: str, value: float, seed: int
    ) -> tuple[Image.Image, Image.Image]:
        from vsae.steer.diffusion_pipeline import SamplerConfig, generate

        pipe, sae, hook = self._load()
        cfg = SamplerConfig(steps=self.steps, guidance=self.guidance, seed=seed, batch_size=1)
        edit = LatentEdit(latent, op, value, "all")
        with self._lock:
            a = generate(pipe, [prompt], cfg)[0]
            b = generate(pipe, [prompt], cfg, sae=sae, hook=hook, edits=[edit])[0]
        return Image.fromarray(a), Image.fromarray(b)


def diffusion_hook(
    pipeline: str | Path | None = None, sae_dir: str | Path | None = None
) -> DiffusionSteer | None:
    """Diffusion steering for the playground: `pipeline` + `sae_dir` when given, else the shapes
    world's shipped tiny text-to-image model and its text-encoder SAE when they are built and
    diffusers is installed; None otherwise (the page then says it is not available)."""
    if pipeline is not None or sae_dir is not None:
        if pipeline is None or sae_dir is None:
            raise VsaeError("diffusion steering needs both a pipeline and an SAE on its text encoder")
        return PipelineDiffusion(pipeline, sae_dir)
    import importlib.util

    if (
        importlib.util.find_spec("diffusers") is None
        or importlib.util.find_spec("vsae.steer.diffusion_pipeline") is None
    ):
        return None
    try:
        from vsae.world.diffusion import shipped_diffusion_dir, shipped_text_sae_dir

        return PipelineDiffusion(shipped_diffusion_dir(), shipped_text_sae_dir())
    except (VsaeError, ImportError):
        return None


def _finite(*xs: Any) -> bool:
    return all(isinstance(x, int | float) and not isinstance(x, bool) and np.isfinite(x) for x in xs)


def _suggested(
    path: Path | None, table: Callable[[dict], list], name_key: str, extra: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """``[{"latent", "name", *extra}]`` from a results.json's per-latent table (empty when absent
    or foreign)."""
    if path is None or not Path(path).is_file():
        return []
    try:
        rows = table(json.loads(Path(path).read_text()))
        return [
            {"latent": int(r["latent"]), "name": r.get(name_key), **{k: r.get(k) for k in extra}}
            for r in rows
        ]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError, OSError):
        return []


class Playground:
    """A LLaVA, the SAE on its vision tower and the hook point, loaded on the first steer."""

    def __init__(self, src: SteerSource):
        self.src = src
        self._loaded: tuple | None = None
        self._lock = threading.Lock()
        self._base: dict[tuple, str] = {}
        self._acts: tuple[np.ndarray, np.ndarray] | None = None  # (image ids, pooled latents [N, F])

    @property
    def lock(self) -> threading.Lock:
        """Held while the LLaVA runs (a steer, an extraction at its hook)."""
        return self._lock

    def dirs(self) -> tuple[Path, Path]:
        """(the LLaVA directory, its steering SAE's directory); nothing is loaded."""
        if self.src.llava is not None:
            if self.src.sae_dir is None:
                raise VsaeError("--llava needs --steer-sae (an SAE trained on its vision tower)")
            return Path(self.src.llava), Path(self.src.sae_dir)
        from vsae.world.llava import shipped_llava_dir, shipped_steering_sae_dir

        return shipped_llava_dir(), Path(self.src.sae_dir or shipped_steering_sae_dir())

    def load(self) -> tuple[Any, Any, Any, str]:
        """(LoadedModel, processor, SAE, hook); loads once."""
        with self._lock:
            if self._loaded is None:
                from transformers import AutoProcessor

                import vsae.models
                import vsae.sae

                llava, sae_dir = self.dirs()
                lm = vsae.models.load(str(llava))
                if lm.family != "llava":
                    raise VsaeError(f"{llava} is a {lm.family} model, not a LLaVA")
                lm.full_model.eval()
                self._loaded = (
                    lm,
                    AutoProcessor.from_pretrained(str(llava)),
                    vsae.sae.load(str(sae_dir)).eval(),
                    default_hook(lm),
                )
            return self._loaded

    def info(self) -> dict[str, Any]:
        """What the form offers: dictionary size, ops, default question, suggested latents."""

        lm, _, sae, hook = self.load()
        sugg = self.suggested()
        return {
            "n_latents": int(sae.cfg.d_sae),
            "ops": list(OPS),
            "hook": hook,
            "value": 100.0,
            "question": STEERING_QUESTION,
            "suggested": sugg,
            "llava": str(lm.provenance.get("model")),
        }

    def latent(
        self, f: int, image_ids: np.ndarray, load: Callable[[int], Image.Image], k: int = 8
    ) -> dict[str, Any]:
        """Steering-SAE latent f on the served images, to inspect it before steering: its top `k`
        images by the activation the steering experiment ranks latents by (mean over the patch
        tokens at the hook, `vsae.steer.mllm.pooled_latents`) and how many images it fires
        on. The latents of `image_ids` (at most MAX_INSPECT, seeded sample) are computed once."""
        lm, _, sae, hook = self.load()
        if not 0 <= f < sae.cfg.d_sae:
            raise VsaeError(f"latent {f} out of range (0..{sae.cfg.d_sae - 1}) of the steering SAE")
        with self._lock:
            if self._acts is None:
                ids = np.asarray(image_ids)
                if len(ids) > MAX_INSPECT:
                    ids = np.sort(np.random.default_rng(0).choice(ids, MAX_INSPECT, replace=False))
                stats = pooled_latents(lm, hook, sae, [load(int(i)) for i in ids])
                self._acts = (ids, stats.acts_NF)
            ids, acts = self._acts
        col = acts[:, f]
        o = np.argsort(-col, kind="stable")[:k]
        names = {s["latent"]: s["name"] for s in self.suggested()}
        return {
            "latent": f,
            "name": names.get(f),
            "hook": hook,
            "n_images": int(len(ids)),
            "fires_on": int((col > 0).sum()),
            "max": round(float(col.max()), 4) if len(col) else 0.0,
            "top": [{"image": int(ids[i]), "value": round(float(col[i]), 4)} for i in o if col[i] > 0],
        }

    def suggested(self) -> list[dict[str, Any]]:
        """The latents of the steering experiment's results table, with names."""
        return _suggested(self.src.steer_results, lambda res: res.get("latents", []), "name")

    def diffusion_suggested(self) -> list[dict[str, Any]]:
        """The text-encoder SAE latents the diffusion steering experiment steered, with their words
        and the value it steered each with (its strength times the latent's largest activation on
        the captions; None where the results do not say): the diffusion panel's own suggestions."""

        def rows(res: dict) -> list:
            st = res.get("steering", {})
            k = st.get("strength")
            return [
                {**r, "value": round(k * r["max_act"], 2) if _finite(k, r.get("max_act")) else None}
                for r in st.get("latents", [])
            ]

        return _suggested(self.src.diffusion_results, rows, "word", extra=("value",))

    def answer(
        self, image_key: Any, image: Image.Image, latent: int, op: str, value: float, question: str
    ) -> dict[str, Any]:
        """The answer to `question` about `image` unsteered and with the edit at every token."""

        question = question.strip()
        if not question or len(question) > MAX_QUESTION or "\n" in question:
            raise VsaeError(f"the question must be one line of 1..{MAX_QUESTION} characters")
        lm, proc, sae, hook = self.load()
        if not 0 <= latent < sae.cfg.d_sae:
            raise VsaeError(f"latent {latent} out of range (0..{sae.cfg.d_sae - 1}) of the steering SAE")
        edit = LatentEdit(latent, op, value, "all")
        with self._lock:
            k = (image_key, question)
            if k not in self._base:
                if len(self._base) > 4096:
                    self._base.clear()
                self._base[k] = ask(lm.full_model, proc, [image], question)[0]
            with intervene(lm, hook, sae, [edit]):
                steered = ask(lm.full_model, proc, [image], question)[0]
        return {
            "unsteered": self._base[k],
            "steered": steered,
            "latent": latent,
            "op": op,
            "value": value,
            "question": question,
            "hook": hook,
        }
