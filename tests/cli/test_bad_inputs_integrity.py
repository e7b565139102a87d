"""Security and integrity cases of the bad-input catalogue (issue 31): pickle weights reachable
through `from_pretrained`, `vsae serve DIR` following paths out of DIR, stores whose manifests
lie (dtype, overlapping parts, a billion parts, damaged sparse shards), split names that collide
or mislabel, NaN/negative steering settings, a BatchTopK momentum that breaks inference, and a
batch larger than the store refused before anything is written.

Each case runs through `tests/cli/test_bad_inputs.py`'s check (exit 2, one `error:` line, no
traceback, nothing written); `vsae store check` reports a damaged shard as a problem (exit 1).
`world export`'s cases (a bound on --n, an incomplete marker) belong to issue 22.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.cli import test_bad_inputs as catalogue
from tests.cli.test_bad_inputs import (
    Case,
    _sha,
    copy_store,
    edit_manifest,
    run_cli,
    shard0,
    train_args,
)
from tests.cli.test_bad_inputs import test_bad_input_is_one_line as check_one_line

from vsae.cli import main
from vsae.errors import VsaeError
from vsae.store import ActivationStore
from vsae.store.writer import SparseStoreWriter

ctx = catalogue.ctx  # the catalogue's shared inputs (a module-scoped pytest fixture)
PICKLE = b"\x80\x04not a real pickle: must never be opened"


# ----------------------------------------------------------------------------- pickle weights
def pickle_only(src: Path, dst: Path, sub: str = "") -> Path:
    """A copy of model directory `src` whose (sub-folder's) safetensors weights are replaced by a pickle."""
    d = Path(shutil.copytree(src, dst))
    w = d / sub if sub else d
    for f in w.glob("*.safetensors"):
        f.unlink()
    name = "diffusion_pytorch_model.bin" if sub == "unet" else "pytorch_model.bin"
    (w / name).write_bytes(PICKLE)
    return d


def steer_diffusion_args(tmp: Path, *extra: str) -> list[str]:
    return [
        "steer", "diffusion", "--out", str(tmp / "steer"), "--latents", "0", "--n-prompts", "1",
        "--n-eval", "0", "--discovery-latents", "1", "--discovery-prompts", "1", "--steps", "2",
        "--quiet", *extra,
    ]  # fmt: skip


def pickled_clip(ctx, tmp) -> list[str]:
    return steer_diffusion_args(tmp, "--clip", str(pickle_only(ctx["clip"], tmp / "clip")))


def pickled_unet(ctx, tmp) -> list[str]:
    from vsae.world.diffusion import shipped_diffusion_dir, shipped_text_sae_dir

    pipe = pickle_only(shipped_diffusion_dir(), tmp / "pipe", sub="unet")
    return steer_diffusion_args(tmp, "--pipeline", str(pipe), "--sae", str(shipped_text_sae_dir()))


# ----------------------------------------------------------------------------- serve DIR
def demo_dir(ctx, tmp, how: str) -> list[str]:
    """A `vsae demo`-like directory whose results.json (or a runs/ symlink) points out of it at a
    real SAE run and store (the old code served them)."""
    out = tmp / "outside"
    shutil.copytree(ctx["sae"], out / "topk-x2-k4")
    for f in ctx["good"].iterdir():
        shutil.copy(f, out / f.name)  # `out` is also a store, for acts = <root>/stores/clip/test/<hook>
    root = tmp / "demo"
    (root / "runs" / "resid.0").mkdir(parents=True)
    (root / "stores" / "clip" / "test").mkdir(parents=True)
    hook, name = "resid.0", "topk-x2-k4"
    if how == "absolute":  # run and store outside
        hook = str(out)
    else:  # the store inside, the run outside
        shutil.copytree(ctx["good"], root / "stores" / "clip" / "test" / hook)
        if how == "dotdot":
            name = "../../../outside/topk-x2-k4"
        else:
            os.symlink(out / name, root / "runs" / hook / name)
    (root / "results.json").write_text(json.dumps({"layers": {hook: {"saes": {name: {}}}}}))
    return ["serve", str(root), "--port", "0"]


# ----------------------------------------------------------------------------- store integrity
def rewrite_shard(store: Path, key: str, a: np.ndarray, shard: int = 0) -> Path:
    """Replace shard file `key` with array `a` and record its sha256 (the checksum cannot tell)."""
    m = json.loads((store / "manifest.json").read_text())
    f = store / m["shards"][shard]["files"][key]
    with open(f, "wb") as fh:
        np.save(fh, a)
    m["shards"][shard]["sha256"][key] = _sha(f)
    (store / "manifest.json").write_text(json.dumps(m))
    return store


def relabelled_dtype(ctx, tmp) -> Path:
    """float16 shards under a manifest that says bfloat16: read as other numbers by the old code."""
    from vsae.store import StoreWriter

    x = torch.randn(400, 8, generator=torch.Generator().manual_seed(4))
    w = StoreWriter.create_or_resume(tmp / "acts", d=8, dtype="float16", rows_per_shard=100)
    for a in range(0, 400, 50):
        w.add(x[a : a + 50], np.arange(a, a + 50), np.zeros(50, np.int64))
        w.mark_images_done(a + 50)
    w.close()
    return edit_manifest(tmp / "acts", lambda m: m.update(dtype="bfloat16"))


def int_shard(dtype: str) -> Callable:
    def make(ctx, tmp):
        s = copy_store(ctx, tmp)
        a = np.load(shard0(s))
        return rewrite_shard(s, "acts", np.clip(a * 10, -100, 100).astype(dtype))

    return make


def doubled_parts(ctx, tmp) -> Path:
    """One store's manifest saved as both parts of a 2-part store: every row counted twice."""
    s = copy_store(ctx, tmp)
    m = json.loads((s / "manifest.json").read_text())
    (s / "manifest.json").unlink()
    for i in range(2):
        (s / f"manifest.part-{i}-of-2.json").write_text(json.dumps({**m, "part": [i, 2]}))
    return s


def billion_parts(ctx, tmp) -> Path:
    s = copy_store(ctx, tmp)
    m = json.loads((s / "manifest.json").read_text())
    (s / "manifest.json").unlink()
    (s / "manifest.part-0-of-1000000000.json").write_text(json.dumps({**m, "part": [0, 10**9]}))
    return s


def sparse_store(tmp: Path, d: int = 16) -> Path:
    g = torch.Generator().manual_seed(5)
    x = torch.relu(torch.randn(200, d, generator=g) - 0.5)
    w = SparseStoreWriter.create_or_resume(tmp / "lat", d=d, dtype="float32", rows_per_shard=100)
    for a in range(0, 200, 50):
        w.add(x[a : a + 50], np.arange(a, a + 50), np.zeros(50, np.int64))
        w.mark_images_done(a + 50)
    w.close()
    return tmp / "lat"


def sparse_index_past_d(ctx, tmp) -> Path:
    s = sparse_store(tmp)
    idx = np.load(shard0(s, "indices"))
    idx[3] = 16  # = d: one past the last latent
    return rewrite_shard(s, "indices", idx)


def sparse_short_values(ctx, tmp) -> Path:
    s = sparse_store(tmp)
    return rewrite_shard(s, "values", np.load(shard0(s, "values"))[:-4])


# ----------------------------------------------------------------------------- eval probe / ood
def labelled(ctx, tmp, name: str) -> Path:
    s = Path(shutil.copytree(ctx[name], tmp / f"{name}-labelled"))
    (s / "images.json").write_text(json.dumps({"labels": [i % 2 for i in range(400)], "classes": ["a", "b"]}))
    return s


def probe_args(ctx, tmp, *evals: str) -> list[str]:
    tr, te = labelled(ctx, tmp, "good"), labelled(ctx, tmp, "other")
    args = ["eval", "probe", "--train", str(tr), "--sae", str(ctx["sae"]), "--out", str(tmp / "probe")]
    for e in evals:
        args += ["--eval", e.format(train=tr, test=te)]
    return args


def ood_args(ctx, tmp) -> list[str]:
    a, b = str(ctx["other"]), str(ctx["good"])
    return ["eval", "ood", "--in", str(ctx["good"]), "--ood", f"x={a}", "--ood", f"x={b}",
            "--sae", str(ctx["sae"]), "--out", str(tmp / "ood")]  # fmt: skip


def acts(make_store: Callable, id: str, match: str) -> Case:
    return Case(id, lambda c, t: train_args(make_store(c, t), t / "out"), match)


CASES = [
    # pickle weights: refused by name before anything is loaded
    # (in a subprocess: transformers' loading bars are off only when `vsae` starts before it is imported)
    Case(
        "steer-diffusion-clip-pickle-only",
        pickled_clip,
        r"only pickle weights \(pytorch_model.bin\)",
        sub=True,
    ),
    Case(
        "steer-diffusion-pipeline-pickled-unet",
        pickled_unet,
        r"unet has only pickle weights \(diffusion_pytorch_model.bin\)",
        sub=True,
    ),
    # vsae serve DIR reads only inside DIR
    Case(
        "serve-results-absolute-path", lambda c, t: demo_dir(c, t, "absolute"), "outside the served directory"
    ),
    Case("serve-results-dotdot-path", lambda c, t: demo_dir(c, t, "dotdot"), "outside the served directory"),
    Case("serve-run-symlink-out", lambda c, t: demo_dir(c, t, "symlink"), "outside the served directory"),
    # stores whose manifests lie
    acts(
        relabelled_dtype, "store-float16-shards-bfloat16-manifest", r"float16\) values but .* bfloat16 store"
    ),
    acts(int_shard("int8"), "store-int8-shard-in-float32", r"int8\) values but .* float32 store"),
    acts(int_shard("int64"), "store-int64-shard-in-float32", r"int64\) values but .* float32 store"),
    acts(doubled_parts, "store-parts-list-same-shards", "listed twice"),
    Case(
        "store-check-parts-list-same-shards",
        lambda c, t: ["store", "check", str(doubled_parts(c, t))],
        "listed twice",
    ),
    Case(
        "store-info-billion-parts",
        lambda c, t: ["store", "info", str(billion_parts(c, t))],
        r"lacks parts \[1, 2, 3, 4, 5\] and 999999994 more of 1000000000",
    ),
    # split names that collide or mislabel
    Case(
        "eval-probe-eval-named-train",
        lambda c, t: probe_args(c, t, "train={test}"),
        "'train' names the --train store's split",
    ),
    Case(
        "eval-probe-duplicate-eval",
        lambda c, t: probe_args(c, t, "test={test}", "test={train}"),
        "--eval names the split 'test' twice",
    ),
    Case("eval-ood-duplicate-ood", ood_args, "--ood names the split 'x' twice"),
    # steering settings that would run and report NaN
    Case(
        "steer-mllm-value-nan",
        lambda c, t: ["steer", "mllm", "--value", "nan", "--out", str(t / "s")],
        "--value must be a finite number, got nan",
    ),
    Case(
        "steer-diffusion-guidance-nan",
        lambda c, t: steer_diffusion_args(t, "--guidance", "nan"),
        r"--guidance must be a finite number in \[0, inf\], got nan",
    ),
    Case(
        "steer-diffusion-strength-nan",
        lambda c, t: steer_diffusion_args(t, "--strength", "nan"),
        "--strength must be a finite number, got nan",
    ),
    Case(
        "steer-diffusion-eta-negative",
        lambda c, t: steer_diffusion_args(t, "--eta", "-1"),
        r"--eta must be a finite number in \[0, 1\], got -1",
    ),
    # training
    Case(
        "train-threshold-momentum-5",
        lambda c, t: train_args(c["good"], t / "out", "--arch", "batchtopk", "--threshold-momentum", "5"),
        r"--threshold-momentum must be a number in \[0, 1\), got 5",
    ),
    Case(
        "train-batch-larger-than-store",
        lambda c, t: [*train_args(c["good"], t / "out"), "--batch-size", "1000"],
        "the store has 400 rows, fewer than one batch of 1000",
    ),
]


def test_catalogue_ids_are_unique():
    assert len(CASES) >= 20 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_integrity_case_is_one_line(case: Case, ctx, tmp_path, capsys):
    check_one_line(case, ctx, tmp_path, capsys)


def test_batch_refusal_leaves_a_clean_rerun(ctx, tmp_path, capsys):
    """The corrected rerun after a too-large batch trains (it was refused as 'already holds a run')."""
    out = tmp_path / "out"
    code, _ = run_cli([*train_args(ctx["good"], out), "--batch-size", "1000"], False, capsys)
    assert code == 2 and not out.exists()
    code, err = run_cli(train_args(ctx["good"], out), False, capsys)
    assert code == 0, err


# `vsae store check` reports damage as problems, exit 1 (the old code passed each of these: exit 0)
CHECK_CASES = [
    ("float16-under-bfloat16", relabelled_dtype, r"float16\) values but the manifest's bfloat16 store"),
    ("int8-in-float32", int_shard("int8"), r"int8\) values but the manifest's float32 store"),
    ("int64-in-float32", int_shard("int64"), r"int64\) values but the manifest's float32 store"),
    ("sparse-index-past-d", sparse_index_past_d, r"latent indices 0\.\.16 but the store has d=16"),
    ("sparse-values-shorter", sparse_short_values, r"indices, \d+ values; the store is damaged"),
]


@pytest.mark.parametrize("make,match", [c[1:] for c in CHECK_CASES], ids=[c[0] for c in CHECK_CASES])
def test_store_check_reports_damage(make, match, ctx, tmp_path, capsys):
    import re

    store = make(ctx, tmp_path)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["store", "check", str(store)])
    code, out = e.value.code, capsys.readouterr()
    assert code == 1, out
    problems = [x for x in out.out.splitlines() if x.startswith("problem: ")]
    assert problems and all(re.search(match, x) for x in problems), out.out
    assert "Traceback" not in out.err


def test_reading_a_damaged_sparse_store_is_one_line(ctx, tmp_path):
    """Rows of a sparse store with an index >= d: a VsaeError, not an IndexError from torch."""
    s = ActivationStore.open(sparse_index_past_d(ctx, tmp_path))
    with pytest.raises(VsaeError, match="latent indices 0..16 but the store has d=16"):
        s[0:10]
    short = ActivationStore.open(sparse_short_values(ctx, tmp_path / "b"))
    with pytest.raises(VsaeError, match="is inconsistent"):
        short.csr(0, 10)


def test_probe_with_distinct_names_still_runs(ctx, tmp_path, capsys):
    """The checks refuse only the bad names: test=<store> beside --train runs."""
    code, err = run_cli(probe_args(ctx, tmp_path, "test={test}"), False, capsys)
    assert code == 0, err
    acc = json.loads((tmp_path / "probe" / "probe.json").read_text())["accuracy"]
    assert set(acc["raw"]) == set(acc["sae"]) == {"train", "test"}


# ----------------------------------------------------------------------------- no pickle reachable
WEIGHTLESS = ("Processor", "Tokenizer", "Config")  # loaders of JSON / vocabulary files, never weights
# foreign `.pt` SAE checkpoints (issue 25) and local timm checkpoints (issue 30), weights_only=True
TORCH_LOAD_ALLOWED = ("sae/importers/common.py", "models/families/timm.py")


def test_no_from_pretrained_in_src_can_reach_a_pickle():
    """Every `X.from_pretrained(...)` in src loads a processor, tokenizer or config, or is the one
    helper (vsae.models.hf.safe_from_pretrained), which passes use_safetensors=True. torch.load only
    with weights_only=True, in the two readers of foreign checkpoints."""
    import vsae

    src = Path(vsae.__file__).parent  # the code under test
    helper_calls, bad = 0, []
    for p in sorted(src.rglob("*.py")):
        text = p.read_text()
        for node in ast.walk(ast.parse(text)):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if ast.unparse(node.func) == "torch.load":  # only where an issue allows it, never unsafe
                where = str(p.relative_to(src))
                weights_only = any(
                    kw.arg == "weights_only" and ast.unparse(kw.value) == "True" for kw in node.keywords
                )
                if where not in TORCH_LOAD_ALLOWED or not weights_only:
                    bad.append(f"{where}:{node.lineno} torch.load")
                continue
            if node.func.attr != "from_pretrained":
                continue
            receiver = ast.unparse(node.func.value)
            safe = any(
                kw.arg == "use_safetensors" and ast.unparse(kw.value) == "True" for kw in node.keywords
            )
            if safe and receiver == "cls" and p.name == "hf.py":
                helper_calls += 1
            elif not receiver.split(".")[-1].endswith(WEIGHTLESS):
                bad.append(f"{p.relative_to(src)}:{node.lineno} {receiver}.from_pretrained")
    assert helper_calls == 1 and not bad, bad


@pytest.mark.parametrize(
    "load",
    [
        "vsae.world.clip_zeroshot:zero_shot_accuracy",
        "vsae.world.train_simenc:embed",
        "vsae.world.llava.answer_accuracy:load_llava",
        "vsae.world.diffusion.judge:AttributeJudge",
        "vsae.experiments.diffusion_steering.discovery:ClipScorer",
        "vsae.steer.embed:ImageTextEmbedder",
    ],
)
def test_world_and_steer_loaders_refuse_pickle_weights(load, ctx, tmp_path):
    import importlib

    mod, name = load.split(":")
    fn = getattr(importlib.import_module(mod), name)
    d = pickle_only(ctx["clip"], tmp_path / "m")
    with pytest.raises(VsaeError, match=r"only pickle weights \(pytorch_model.bin\)"):
        if name == "AttributeJudge":
            fn(d).embed(np.zeros((1, 32, 32, 3), np.uint8))
        elif name == "embed":
            fn([], d)
        else:
            fn(d)


def test_serve_dir_images_confined_to_the_served_directory(tmp_path):
    """`vsae serve DIR`: an image named by a store's images.json (absolute, or through the recorded
    root) is served only when it resolves inside DIR."""
    from vsae.serve.latent_index import ImageSet

    served, outside = tmp_path / "served", tmp_path / "elsewhere"
    store = served / "stores" / "s"
    store.mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"x")
    (served / "ok.png").write_bytes(b"x")
    table = {
        "kind": "list",
        "items": [str(outside / "secret.png"), str(served / "ok.png")],
        "root": str(tmp_path),
    }
    (store / "images.json").write_text(json.dumps(table))
    images = ImageSet(store, None, confine=served)
    with pytest.raises(VsaeError, match="outside the served directory"):
        images.path(0)
    assert images.path(1) == (served / "ok.png").resolve()
    assert ImageSet(store, None).path(0) == (outside / "secret.png").resolve()  # explicit flags: not confined
