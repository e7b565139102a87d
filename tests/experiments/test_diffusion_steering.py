"""The diffusion steering experiment without the embedded world: a tiny random-weight Stable
Diffusion pipeline scored by a toy judge registered through `DIFFUSION_JUDGES`, run in a fresh
interpreter that must never import `vsae.world` (issue 24)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# A toy world: prompts name a hue (red / blue) and a tone (dark / light); the reader reads the
# hue from the dominant channel and the tone from the mean brightness.
TOY = """
import json, sys
from pathlib import Path
import numpy as np
from vsae.experiments.diffusion_steering.diffusion_config import DiffusionSteerConfig
from vsae.experiments.diffusion_steering.discovery import VocabWord
from vsae.experiments.diffusion_steering.judges import DIFFUSION_JUDGES, judge_name
from vsae.experiments.diffusion_steering.diffusion_run import run_diffusion_steering

VALUES = {"hue": ("red", "blue"), "tone": ("dark", "light")}
PROMPTS = [f"a {h} {t} star" for h in VALUES["hue"] for t in VALUES["tone"]]
CALLS = []

class Reader:
    def predict(self, images, attributes=("hue", "tone")):
        CALLS.append(len(images))
        x = images.astype(np.float64)
        read = {"hue": (x[..., 2].mean((1, 2)) > x[..., 0].mean((1, 2))).astype(np.int64),
                "tone": (x.mean((1, 2, 3)) > 127).astype(np.int64)}
        return {a: read[a] for a in attributes}

@DIFFUSION_JUDGES.register("toy")
class Toy:
    judged = ("hue", "tone")
    named = ("hue", "tone")
    drawn_iou = 0.5
    def values(self, a): return VALUES[a]
    def vocabulary(self):
        return [VocabWord(v, (f"a photo of a {v} thing",), a, i) for a in self.named for i, v in enumerate(VALUES[a])]
    def naming_clip(self): return sys.argv[3]
    def default_pipeline(self): raise AssertionError("the pipeline is given")
    def default_sae(self): raise AssertionError("the SAE is given")
    def captions(self, n, seed): return [PROMPTS[i % 4] for i in range(n)]
    def heldout(self, n, seed):
        idx = np.random.default_rng(seed).integers(0, 4, n)
        return [PROMPTS[i] for i in idx], {"hue": idx // 2, "tone": idx % 2}
    def reader(self, pipeline): return Reader()
    def generation(self, pipe, reader, n, seed, sampler):
        return {"generated": {"hue": 0.5, "tone": 0.25}, "real": {"hue": 1.0, "tone": 1.0},
                "silhouette": {"generated": {"shape": 0.0, "mean_iou": 0.0}}}
    def silhouette_iou(self, images): return np.where(images.mean((1, 2, 3)) > 0, 1.0, 0.0)

Toy = Toy()
DIFFUSION_JUDGES.register("toy", replace=True)(Toy)
assert judge_name({"kind": "vsae-toy-diffusion"}) == "toy" and judge_name({"kind": "diffusers"}) is None
cfg = DiffusionSteerConfig(hook="resid.-1", n_latents=3, n_prompts=4, n_eval=4, discovery_latents=3,
                           discovery_prompts=2, steps=2, n_captions=8, sweep=(2.0,), force=True)
res = run_diffusion_steering(sys.argv[1], sys.argv[2], sys.argv[4], cfg, judge="toy", progress=False)
saved = json.loads((Path(sys.argv[4]) / "results.json").read_text())
assert json.dumps(res.to_json(), sort_keys=True) == json.dumps(saved, sort_keys=True)
print(json.dumps({"world": sorted(m for m in sys.modules if m.startswith("vsae.world")), "calls": len(CALLS)}))
"""


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    from tests.steer.conftest import make_sae

    import vsae.sae
    from vsae.models.tiny_models import build_tiny
    from vsae.world.diffusion.t2i_tiny import HIDDEN, build_tiny_sd_pipeline

    root = tmp_path_factory.mktemp("toy")
    sd = build_tiny_sd_pipeline(root / "sd")
    sae = root / "sae"
    vsae.sae.save(make_sae(d_in=HIDDEN, d_sae=64, k=8), sae)
    return sd, sae, build_tiny("clip", root / "clip")


def test_runs_on_stable_diffusion_with_a_registered_toy_judge_and_never_imports_the_world(parts, tmp_path):
    sd, sae, clip = parts
    out = tmp_path / "o"
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(Path("src").resolve()), os.environ.get("PYTHONPATH", "")])
    )
    r = subprocess.run(
        [sys.executable, "-c", TOY, str(sd), str(sae), str(clip), str(out)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    seen = json.loads(r.stdout.strip().splitlines()[-1])
    assert seen["world"] == []  # nothing of the embedded world was imported
    assert seen["calls"] > 0  # the toy judge's reader read the images
    res = json.loads((out / "results.json").read_text())
    assert res["generation"] == {
        "n": 4,
        "accuracy": {"hue": 0.5, "tone": 0.25},
        "judge_accuracy_on_real": {"hue": 1.0, "tone": 1.0},
        "silhouette": {"shape": 0.0, "mean_iou": 0.0},
    }
    s = res["steering"]
    assert s["drawn_iou"] == 0.5 and s["op"] == "clamp"
    words = {"red", "blue", "dark", "light"}
    for row in s["latents"]:  # picked by their text-side word: a value of a judged attribute
        assert row["word"] in words and row["attribute"] in ("hue", "tone")
        assert 0.0 <= row["target_steered"] <= 1.0 and 0.0 <= row["preserved"] <= 1.0
        assert row["target_steered_drawn"] <= row["target_steered"]
    if s["latents"]:
        mean = np.mean([row["target_steered"] for row in s["latents"]])
        assert s["target_rate"]["steered"] == pytest.approx(mean)
        assert [x["strength"] for x in s["sweep"]] == [2.0]
        assert s["sweep"][0]["kept_all"] is not None  # the trade-off curve: target vs all others kept
        sp = s["specificity"]  # issue 23: both references ran on every scored latent
        assert sp["random_latent"] is not None and sp["prompt_edit"] is not None
        assert set(sp["preserved_by_attribute"]) <= {"hue", "tone"}
    d = res["discovery"]
    assert d["vocabulary"] == ["red", "blue", "dark", "light"] and d["n_latents"] == 3
    assert d["agreement"] is not None and "n_with_truth" in d
    assert all(x["name"] in words for x in d["latents"])
    assert (out / "index.html").is_file()


def test_judge_lookup_is_by_name_or_kind_and_lists_the_choices():
    from vsae.errors import VsaeError
    from vsae.experiments.diffusion_steering.judges import DIFFUSION_JUDGES, find_judge, judge_name

    assert judge_name({"kind": "diffusers"}) is None
    assert judge_name({"kind": "vsae-world-diffusion"}) == "world"  # declared as an entry point
    assert judge_name({"kind": "diffusers"}, "world") == "world"
    assert find_judge({"kind": "diffusers"}) is None
    with pytest.raises(VsaeError, match="unknown diffusion judge 'nope'.*world"):
        find_judge({}, "nope")
    world = DIFFUSION_JUDGES.get("world")  # imports vsae.world.diffusion.judge, which registers it
    assert world.judged == ("shape", "colour", "size") and world.values("size")
    prompts, truth = world.heldout(5, 0)
    assert len(prompts) == 5 and set(truth) == set(world.judged)


def test_specificity_rates_and_references_match_a_direct_computation():
    """Issue 23: images keeping every other attribute, preservation per attribute, a reference
    edit's rates and the prompt edit, against loops over the images."""
    from vsae.experiments.diffusion_steering.scoring import edit_prompt, reference, steering_rates

    rng = np.random.default_rng(1)
    n = 50
    truth = {"shape": rng.integers(0, 6, n), "colour": rng.integers(0, 8, n), "size": rng.integers(0, 3, n)}
    ps = {a: np.where(rng.random(n) < 0.6, v, rng.integers(0, 3, n)) for a, v in truth.items()}
    pu = {a: np.where(rng.random(n) < 0.9, v, rng.integers(0, 3, n)) for a, v in truth.items()}
    r = steering_rates(ps, pu, truth, "colour", 2)
    for pred, kept in ((ps, r.kept_all), (pu, r.kept_all_baseline)):
        direct = sum(all(pred[a][i] == truth[a][i] for a in ("shape", "size")) for i in range(n)) / n
        assert kept == pytest.approx(direct)
    assert r.preserved_by_attribute is not None and r.preserved_by_attribute_baseline is not None
    assert set(r.preserved_by_attribute) == {"shape", "size"}  # the target attribute is not "kept"
    assert r.preserved_by_attribute["size"] == pytest.approx(
        sum(ps["size"][i] == truth["size"][i] for i in range(n)) / n
    )
    assert r.preserved == pytest.approx(np.mean(list(r.preserved_by_attribute.values())))
    assert r.kept_all <= min(r.preserved_by_attribute.values())
    ref = reference(ps, truth, "colour", 2, latent=7)
    assert (ref.target, ref.kept_all, ref.preserved, ref.latent) == (
        pytest.approx(r.target_steered),
        pytest.approx(r.kept_all),
        pytest.approx(r.preserved),
        7,
    )
    p = "a small red upright square on the left of a dark striped background"
    assert (
        edit_prompt(p, "red", "blue")
        == "a small blue upright square on the left of a dark striped background"
    )
    assert edit_prompt(p, "small", "large").startswith("a large red")
    assert edit_prompt("a reddish star", "red", "blue") == "a reddish star"  # whole words only
