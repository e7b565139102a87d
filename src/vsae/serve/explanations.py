"""Explanations in `vsae serve` (`vsae eval explain`'s explanations.json): the phrase and its scores
on the table and latent pages, and the concept search: a text query ranks the explained latents by
the judge CLIP's cosine between the query and (a) their phrase, (b) the mean of their top images,
averaged — by meaning, not substring.

Routes: ``GET /api/explain/search?q=...&k=...`` (ranked latents) and ``GET /api/explain/{f}``."""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from vsae.errors import VsaeError, read_json, regular_file

MAX_QUERY = 200


class Explanations:
    """One SAE's explanations.json (+ explanations.safetensors) and the judge that embeds queries."""

    def __init__(self, directory: Path, confine: Path | None = None):
        from safetensors.numpy import load_file

        fix = "run `vsae eval explain` again"
        body = read_json(directory / "explanations.json", "explanations", fix)
        if not isinstance(body, dict) or not isinstance(body.get("latents"), list):
            raise VsaeError(f"{directory}/explanations.json has no 'latents' list; {fix}")
        self.body = body
        try:
            self.by_latent: dict[int, dict[str, Any]] = {int(r["latent"]): r for r in body["latents"]}
        except (TypeError, KeyError, ValueError):
            raise VsaeError(
                f"{directory}/explanations.json has a latent entry without a 'latent' index; {fix}"
            ) from None
        st = regular_file(directory / "explanations.safetensors", "explanation vectors", fix)
        try:
            arr = load_file(str(st))
            self.latents_L = np.asarray(arr["latents"], np.int64)
            self.phrase_LD = np.asarray(arr["phrase_emb"], np.float64)
            self.top_LD = np.asarray(arr["top_emb"], np.float64)
        except Exception as e:  # a damaged or foreign file is a user error
            raise VsaeError(f"cannot read explanation vectors {st} ({type(e).__name__}); {fix}") from None
        n = len(self.latents_L)
        if (
            self.phrase_LD.shape[0] != n
            or self.top_LD.shape != self.phrase_LD.shape
            or n != len(self.by_latent)
        ):
            raise VsaeError(f"{st} does not match {directory}/explanations.json ({n} latents); {fix}")
        self.judge = str(body.get("judge") or "")
        self._confine = confine
        self._text: Any = None
        self._lock = threading.Lock()

    def row(self, f: int) -> dict[str, Any] | None:
        """The latent's phrase and scores, or None when it has no explanation."""
        r = self.by_latent.get(f)
        if r is None:
            return None
        keys = ("phrase", "detection", "shuffled_detection", "name", "name_detection", "explanations")
        return {k: r.get(k) for k in keys} | {"explainer": self.body.get("explainer"), "judge": self.judge}

    def _embed(self, text: str) -> np.ndarray:
        from vsae.eval.naming import encode_words
        from vsae.models import load

        with self._lock:
            if self._text is None:
                self._check_judge()
                self._text = load(self.judge, tower="text")
            e = encode_words(self._text, [text], "{}")[0]
        return e / max(float(np.linalg.norm(e)), 1e-12)

    def _check_judge(self) -> None:
        """A judge named by a served file is loaded only from the served directory or the shipped
        world CLIP (a results file is data, never a way to load another model)."""
        from vsae.world import shipped_clip_dir

        p = Path(self.judge)
        if not p.is_dir():
            raise VsaeError(f"the judge {self.judge} of these explanations is not a model directory here")
        ok = p.resolve() == Path(shipped_clip_dir()).resolve()
        if self._confine is not None and not ok and not p.resolve().is_relative_to(self._confine.resolve()):
            raise VsaeError(f"the judge {self.judge} lies outside the served directory; it is not loaded")

    def search(self, query: str, k: int = 20) -> list[dict[str, Any]]:
        """Explained latents ranked by the mean of cos(query, phrase) and cos(query, top images)."""
        q = self._embed(query)
        sp, st = self.phrase_LD @ q, self.top_LD @ q
        score = (sp + st) / 2
        order = np.argsort(-score, kind="stable")[:k]
        return [
            {
                "latent": int(self.latents_L[j]),
                "score": round(float(score[j]), 4),
                "phrase_cos": round(float(sp[j]), 4),
                "images_cos": round(float(st[j]), 4),
                **(self.row(int(self.latents_L[j])) or {}),
            }
            for j in order
        ]


@functools.cache
def _load(directory: str, confine: str | None) -> Explanations:
    return Explanations(Path(directory), Path(confine) if confine else None)


def check(directory: str | Path) -> Path:
    """`vsae serve --explanations DIR`: DIR if its explanations read (one-line VsaeError if not)."""
    d = Path(directory)
    if not (d / "explanations.json").exists():
        raise VsaeError(
            f"--explanations: {d} has no explanations.json; give a `vsae eval explain --out` directory"
        )
    _load(str(d), None)
    return d


def of(src: Any) -> Explanations | None:
    """The explanations of a served SAE (`SaeSource.explanations`), or None."""
    d = getattr(src, "explanations", None)
    if d is None:
        return None
    return _load(str(d), None if src.confine is None else str(src.confine))


def annotate_rows(src: Any, page: dict[str, Any]) -> dict[str, Any]:
    """The table page with each row's explanation (phrase, detection) added (unchanged for an SAE
    without explanations)."""
    ex = of(src)
    if ex is None:
        return page
    for r in page.get("rows", []):
        e = ex.row(int(r["latent"]))
        r["explanation"] = None if e is None else e["phrase"]
        r["explanation_score"] = None if e is None else e["detection"]
    return page


def annotate_latent(src: Any, d: dict[str, Any]) -> dict[str, Any]:
    """The latent page with its explanation added (None when it has none; unchanged for an SAE
    without explanations)."""
    ex = of(src)
    if ex is not None:
        d["explanation"] = ex.row(int(d["latent"]))
    return d


def _search(req: Request) -> JSONResponse:
    st = req.app.state.vsae
    ix = st.index(req.query_params.get("sae"))
    query = req.query_params.get("q", "").strip()[:MAX_QUERY]
    if not query:
        raise VsaeError("give a query: ?q=words")
    try:
        k = int(req.query_params.get("k", "20"))
    except ValueError:
        raise VsaeError("k must be an integer") from None
    if not 1 <= k <= 200:
        raise VsaeError("k must be in 1..200")
    ex = of(ix.src)
    if ex is None:
        raise VsaeError(f"{ix.src.id} has no explanations; run `vsae eval explain` (the demo writes them)")
    return JSONResponse({"query": query, "sae": ix.src.id, "judge": ex.judge, "results": ex.search(query, k)})


def _one(req: Request) -> JSONResponse:
    st = req.app.state.vsae
    ix = st.index(req.query_params.get("sae"))
    f = int(req.path_params["f"])
    ix.check_latent(f)
    ex = of(ix.src)
    return JSONResponse({"latent": f, "explanation": None if ex is None else ex.row(f)})


def routes() -> list[Route]:
    """The explanation routes `vsae.serve.app.create_app` mounts."""
    return [Route("/api/explain/search", _search), Route("/api/explain/{f:int}", _one)]
