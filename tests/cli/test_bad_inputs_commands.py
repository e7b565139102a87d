"""The bad-input catalogue of issue 22: every command other than extract and train (encode, each eval,
world export) and the artefacts users download or edit. Each case must end with exit status 2,
exactly one `error:` line, no traceback, nothing written outside --out or through a symlink, and
nothing left in --out that a rerun trips over (no temporary file, no lock).

Fixtures and the runner come from `tests/cli/test_bad_inputs.py` (issue 16's catalogue of extract
and train). FIFO cases run in a subprocess: a reader that opened one would block, and the
subprocess's timeout turns that hang into a failure.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file as save_np
from safetensors.torch import load_file, save_file
from tests.cli.test_bad_inputs import D, ctx, run_cli, snapshot, train_args, write_store  # noqa: F401

from vsae.cli import main
from vsae.store import StoreWriter
from vsae.store.safe_io import LOCK_NAME, output_lock

N = 400  # images (one row each) of the catalogue's stores
F = 16  # latents of the catalogue's SAE (topk-x2-k4 on d=8)
VICTIM = b"a file outside every --out: must never change\n"


@pytest.fixture(scope="module")
def cx(ctx):  # noqa: F811  (the fixture imported above)
    """Shared, never modified inputs of the eval commands, built on the catalogue's `ctx`."""
    root = ctx["root"] / "commands"
    root.mkdir()
    c = dict(ctx)
    main(
        [
            "encode",
            "--sae",
            str(ctx["sae"]),
            "--acts",
            str(ctx["good"]),
            "--out",
            str(root / "lat"),
            "--quiet",
        ]
    )
    c["lat"] = root / "lat"
    main(["eval", "top-images", "--latents", str(c["lat"]), "--out", str(root / "top"), "-k", "4", "--quiet"])
    c["top"] = root / "top"
    classes = ["a", "b", "c", "d"]
    table = {
        "kind": "folder",
        "root": str(root),
        "split": None,
        "items": [f"{classes[i % 4]}/{i}.png" for i in range(N)],
        "labels": [i % 4 for i in range(N)],
        "classes": classes,
        "taxonomy": None,
    }
    c["table_obj"] = table
    (root / "images.json").write_text(json.dumps(table))
    c["table"] = root / "images.json"
    (root / "tax.json").write_text(json.dumps({k: ["root", "ab" if k in "ab" else "cd", k] for k in classes}))
    c["tax"] = root / "tax.json"
    lab = Path(shutil.copytree(ctx["good"], root / "lab"))
    (lab / "images.json").write_text(json.dumps(table))
    c["lab"] = lab
    g = np.random.default_rng(0)
    np.save(root / "emb.npy", g.standard_normal((N, 4)).astype(np.float32))
    c["emb"] = root / "emb.npy"
    (root / "words.txt").write_text("red\nblue\n")
    c["words"] = root / "words.txt"
    np.save(root / "wemb.npy", g.standard_normal((2, 4)).astype(np.float32))
    c["wemb"] = root / "wemb.npy"
    np.save(root / "clip_emb.npy", g.standard_normal((N, 64)).astype(np.float32))  # the world CLIP's width
    c["clip_emb"] = root / "clip_emb.npy"
    return c


# ----------------------------------------------------------------------------- the commands
def out_of(t: Path) -> Path:
    return t / "out"


def ms(c, t, *, lat=None, emb=None, extra=()):
    return ["eval", "ms", "--latents", str(lat or c["lat"]), "--embeddings", str(emb or c["emb"]),
            "--out", str(out_of(t)), "--quiet", *extra]  # fmt: skip


def top_images(c, t, *, lat=None, extra=()):
    return ["eval", "top-images", "--latents", str(lat or c["lat"]), "--out", str(out_of(t)), "-k", "4",
            "--quiet", *extra]  # fmt: skip


def recon(c, t, *, sae=None, acts=None, extra=()):
    return ["eval", "recon", "--acts", str(acts or c["good"]), "--sae", str(sae or c["sae"]),
            "--out", str(out_of(t)), "--quiet", *extra]  # fmt: skip


def uniqueness(c, t, *, top=None):
    return ["eval", "uniqueness", "--top-images", str(top or c["top"]), "--out", str(out_of(t))]


def hierarchy(c, t, *, top=None, table=None, tax=None, extra=()):
    return ["eval", "hierarchy", "--top-images", str(top or c["top"]), "--table", str(table or c["table"]),
            "--taxonomy", str(tax or c["tax"]), "--out", str(out_of(t)), *extra]  # fmt: skip


def names(c, t, *, top=None, emb=None, words=None, wemb=None, extra=()):
    return ["eval", "names", "--top-images", str(top or c["top"]), "--image-embeddings", str(emb or c["emb"]),
            "--words", str(words or c["words"]), "--word-embeddings", str(wemb or c["wemb"]),
            "--out", str(out_of(t)), *extra]  # fmt: skip


def explain(c, t, *, words=None, emb=None, extra=()):
    from vsae.world import shipped_clip_dir

    return ["eval", "explain", "--latents", str(c["lat"]), "--words", str(words or c["words"]), "--judge-clip",
            str(shipped_clip_dir()), "--image-embeddings", str(emb or c["clip_emb"]), "--out", str(out_of(t)),
            "--n-top", "4", "--n-contrast", "8", "--n-random", "8", "--quiet", *extra]  # fmt: skip


def probe(c, t, *, train=None, sae=None, extra=()):
    return ["eval", "probe", "--train", str(train or c["lab"]), "--eval", f"test={c['lab']}",
            "--sae", str(sae or c["sae"]), "--out", str(out_of(t)), *extra]  # fmt: skip


def ood(c, t, *, sae=None, extra=()):
    return ["eval", "ood", "--in", str(c["good"]), "--ood", f"shift={c['other']}", "--sae", str(sae or c["sae"]),
            "--out", str(out_of(t)), *extra]  # fmt: skip


def encode(c, t, *, sae=None, acts=None, extra=()):
    return ["encode", "--sae", str(sae or c["sae"]), "--acts", str(acts or c["good"]), "--out", str(out_of(t)),
            "--quiet", *extra]  # fmt: skip


def train(c, t, *extra):
    return train_args(c["good"], out_of(t), *extra)


def serve(c, *extra):
    return ["serve", "--acts", str(c["good"]), "--sae", str(c["sae"]), *map(str, extra)]


def export(c, t, *extra):
    return ["world", "export", "--out", str(out_of(t)), *extra]


COMMANDS: dict[str, Callable] = {
    "ms": ms,
    "top-images": top_images,
    "recon": recon,
    "uniqueness": uniqueness,
    "hierarchy": hierarchy,
    "names": names,
    "explain": explain,
    "probe": probe,
    "ood": ood,
    "encode": encode,
    "train": train,
}


def test_every_command_runs_on_the_good_inputs(cx, tmp_path):
    """The refusals below are caused by the bad input alone: each command succeeds on the good ones."""
    for i, (name, cmd) in enumerate(COMMANDS.items()):
        t = tmp_path / str(i)
        t.mkdir()
        main(cmd(cx, t))
        out = out_of(t)
        assert out.is_dir() and any(out.iterdir()), name
        assert not (out / LOCK_NAME).exists() and not list(out.rglob("*.tmp")), name


# ----------------------------------------------------------------------------- the catalogue
@dataclass
class Case:
    """One bad input: `make(cx, tmp)` returns the argv (after creating what it needs under tmp)."""

    id: str
    make: Callable
    match: str
    sub: bool = False  # run as a real subprocess (FIFOs: a hang becomes a timeout)
    hold_lock: bool = False  # run while this test holds the output lock on tmp/out


def victim(t: Path) -> Path:
    v = t / "victim.txt"
    if not v.exists():
        v.write_bytes(VICTIM)
    return v


def linked_output(cmd: Callable, name: str, **kw) -> Callable:
    """`cmd` with a symlink at OUT/<name> (an output or its temporary name) to a file outside OUT."""

    def make(c, t):
        target = victim(t)
        p = out_of(t) / name
        p.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, p)
        return cmd(c, t, **kw)

    return make


def fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        path.unlink()
    os.mkfifo(path)
    return path


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def npy(t: Path, a: np.ndarray, name: str = "emb.npy") -> Path:
    p = t / name
    np.save(p, a, allow_pickle=a.dtype == object)
    return p


def emb_of(a: np.ndarray | Callable[[Path], Path]) -> Callable:
    def make(c, t):
        return ms(c, t, emb=a(t) if callable(a) else npy(t, a))

    return make


def rand(*shape: int, dtype=np.float32) -> np.ndarray:
    return np.random.default_rng(1).standard_normal(shape).astype(dtype)


def with_nan(a: np.ndarray, v: float) -> np.ndarray:
    a = a.copy()
    a[3, 1] = v
    return a


def bf16_safetensors(t: Path) -> Path:
    p = t / "emb.safetensors"
    save_file({"embeddings": torch.randn(N, 4).to(torch.bfloat16)}, str(p))
    return p


# -- latent stores, edited with matching checksums (as a buggy or hostile encoder would write them)
def edited_latents(key: str, fn: Callable[[np.ndarray], np.ndarray]) -> Callable:
    def make_store(c, t) -> Path:
        s = Path(shutil.copytree(c["lat"], t / "lat"))
        m = json.loads((s / "manifest.json").read_text())
        f = s / m["shards"][0]["files"][key]
        a = np.load(f)
        np.save(f, fn(a))
        m["shards"][0]["sha256"][key] = hashlib.sha256(f.read_bytes()).hexdigest()
        (s / "manifest.json").write_text(json.dumps(m))
        return s

    return make_store


def _set(i: int, v) -> Callable[[np.ndarray], np.ndarray]:
    def fn(a):
        a = a.copy()
        a[i] = v
        return a

    return fn


LATENT_EDITS = {
    "index-beyond-d": ("indices", _set(0, F), r"latent indices 0\.\.16 but the store has d=16"),
    "index-far-beyond-d": ("indices", _set(5, 10**6), r"latent indices 0\.\.1000000 but the store has d=16"),
    "index-negative": ("indices", _set(0, -3), r"latent indices -3\.\.15 but the store has d=16"),
    "value-nan": ("values", _set(0, np.nan), r"latent values\) holds 1 NaN or Inf"),
    "value-inf": ("values", _set(2, np.inf), r"latent values\) holds 1 NaN or Inf"),
    "image-id-negative": ("rows", _set(3, [-5, 0]), r"rows\.npy holds image id -5"),
}


# -- top-images files
def top_file(idx: np.ndarray | None = None, val: np.ndarray | None = None, meta=None, drop=None) -> Callable:
    def make_file(c, t) -> Path:
        from safetensors import safe_open

        with safe_open(str(c["top"] / "top_images.safetensors"), "numpy") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118  (safe_open is no dict)
            m = dict(f.metadata() or {})
        if idx is not None:
            tensors["image_index"] = idx
        if val is not None:
            tensors["values"] = val
        if drop:
            del tensors[drop]
        m.update(meta or {})
        p = t / "top" / "top_images.safetensors"
        p.parent.mkdir()
        save_np(tensors, str(p), metadata=m)
        return p

    return make_file


def top_idx(v, shape=(F, 4), dtype=np.int64) -> np.ndarray:
    a = np.tile(np.arange(4, dtype=np.int64), (F, 1)).astype(dtype)
    a.flat[5] = v
    return a.reshape(shape) if a.size == int(np.prod(shape)) else a


TOP_FILES = {
    "index-negative": (top_file(idx=top_idx(-5)), r"image_index\) holds id -5 outside"),
    "index-float": (top_file(idx=top_idx(2, dtype=np.float64)), r"float64 values, not integer ids"),
    "shapes-differ": (
        top_file(val=np.zeros((F, 3))),
        r"image_index has shape \(16, 4\) and values \(16, 3\)",
    ),
    "one-dimensional": (
        top_file(idx=np.arange(F, dtype=np.int64), val=np.zeros(F)),
        r"holds an array of shape \(16,\); expected \[rows, width\]",
    ),
    "values-nan": (top_file(val=np.full((F, 4), np.nan)), r"\(values\) holds 64 NaN or Inf"),
    "values-strings-meta": (top_file(meta={"n_images": "lots"}), r"metadata n_images 'lots' is not a count"),
    "no-values": (top_file(drop="values"), r"not a readable top-images file"),
    "garbage": (lambda c, t: write(t / "top" / "top_images.safetensors", b"\x00" * 64), "not a readable"),
    "empty-file": (lambda c, t: write(t / "top" / "top_images.safetensors", b""), "not a readable"),
    "missing": (
        lambda c, t: t / "nothing" / "top_images.safetensors",
        "does not exist; run `vsae eval top-images`",
    ),
}


# -- image tables (images.json of --table)
def table_file(obj=None, raw: bytes | None = None) -> Callable:
    def make(c, t) -> Path:
        data = raw if raw is not None else json.dumps(obj(c["table_obj"]) if callable(obj) else obj).encode()
        return write(t / "tab" / "images.json", data)

    return make


def _tab(**changes) -> Callable:
    return lambda tab: {**tab, **changes}


TABLES = {
    "binary": (table_file(raw=b"\xff\xfe\x00\x80binary"), r"image table .* is not valid JSON"),
    "truncated": (table_file(raw=b'{"items": ['), r"image table .* is not valid JSON"),
    "a-list": (table_file(obj=[1, 2, 3]), r"not an object with an 'items' list"),
    "nan-literal": (table_file(raw=b'{"items": [], "labels": [NaN]}'), r"NaN is not JSON"),
    "labels-strings": (
        table_file(obj=lambda tab: {**tab, "labels": [str(v) for v in tab["labels"]]}),
        "labels are not all integers",
    ),
    "labels-beyond-classes": (
        table_file(obj=lambda tab: {**tab, "labels": [7] * N}),
        r"\(labels\) holds id 7 outside 0\.\.3",
    ),
    "labels-negative": (table_file(obj=lambda tab: {**tab, "labels": [-4] * N}), r"holds id -4 outside"),
    "labels-count": (table_file(obj=lambda tab: {**tab, "labels": [0, 1]}), r"has 2 labels for 400 images"),
    "labels-not-list": (table_file(obj=_tab(labels="0,1,2")), r"'labels' is not a list"),
    "no-items": (table_file(obj=lambda tab: {k: v for k, v in tab.items() if k != "items"}), "'items' list"),
    "dangling-symlink": (
        lambda c, t: (
            (t / "tab").mkdir()
            or os.symlink("/nonexistent/x", t / "tab" / "images.json")
            or t / "tab" / "images.json"
        ),
        r"image table .* does not exist",
    ),
    "directory": (
        lambda c, t: (t / "tab" / "images.json").mkdir(parents=True) or t / "tab" / "images.json",
        r"images\.json/images\.json does not exist",
    ),  # fmt: skip
}


# -- SAE checkpoints
def damaged_sae(key: str | None = None, value: float = float("inf"), weights: bytes | None = None,
                config: bytes | None = None, fifo_of: str | None = None, src: str = "sae") -> Callable:  # fmt: skip
    def make(c, t) -> Path:
        if src == "steering":  # the shipped tiny LLaVA's steering SAE
            from vsae.world.llava import shipped_steering_sae_dir

            d = Path(shutil.copytree(shipped_steering_sae_dir(), t / "sae"))
        else:
            d = Path(shutil.copytree(c[src], t / "sae"))
        if key is not None:
            w = load_file(str(d / "sae.safetensors"))
            w[key] = w[key].clone()
            w[key].view(-1)[0] = value
            save_file(w, str(d / "sae.safetensors"))
        if weights is not None:
            (d / "sae.safetensors").write_bytes(weights)
        if config is not None:
            (d / "config.json").write_bytes(config)
        if fifo_of is not None:
            fifo(d / fifo_of)
        return d

    return make


SAES = {
    "inf-decoder-bias": (damaged_sae("b_dec_d"), r"b_dec_d holds NaN or Inf"),
    "nan-encoder": (damaged_sae("W_enc_Fd", float("nan")), r"W_enc_Fd holds NaN or Inf"),
    "inf-encoder-bias": (damaged_sae("b_enc_F", float("-inf")), r"b_enc_F holds NaN or Inf"),
    "garbage-weights": (damaged_sae(weights=b"\x08\x00\x00\x00\x00\x00\x00\x00{bad}"), "as safetensors"),
    "garbage-config": (damaged_sae(config=b"\xff\x00garbage"), r"SAE config .* is not valid JSON"),
    "config-a-list": (damaged_sae(config=b"[1, 2]"), r"is not a vsae SAE config"),
}


# -- numbers that would give a traceback or a meaningless result
def one_image_store(c, t) -> Path:
    w = StoreWriter.create_or_resume(t / "one", d=D, dtype="float32", provenance={"hook": "resid.0"})
    w.add(torch.randn(1, D), np.zeros(1, np.int64), np.zeros(1, np.int64))
    w.mark_images_done(1)
    w.close()
    return t / "one"


def retrained_sae(c, t) -> Path:
    """The same SAE directory as a killed encode used, with other weights (a retrained SAE)."""
    d = Path(shutil.copytree(c["sae"], t / "sae"))
    w = load_file(str(d / "sae.safetensors"))
    w["W_enc_Fd"] = w["W_enc_Fd"] * 1.5
    save_file(w, str(d / "sae.safetensors"))
    return d


def half_encoded(c, t, sae: Path) -> None:
    """OUT: a latent store that `vsae encode` left with its first shard (killed), from `c['sae']`."""
    from vsae.sae import load
    from vsae.sae.encode_store import encode_store
    from vsae.store import ActivationStore

    full = t / "full"
    encode_store(load(c["sae"]), ActivationStore.open(c["good"]), full, batch_size=100, progress=False,
                 sae_path=sae)  # fmt: skip
    shutil.copytree(full, out_of(t))
    shutil.rmtree(full)
    m = json.loads((out_of(t) / "manifest.json").read_text())
    m["shards"], m["complete"], m["next_image"], m["rows"] = [], False, 0, 0
    (out_of(t) / "manifest.json").write_text(json.dumps(m))


def resume_encode_with_retrained(c, t) -> list[str]:
    sae = retrained_sae(c, t)
    half_encoded(c, t, sae)  # first encoded with the old weights at the same path
    return encode(c, t, sae=sae)


def incomplete_export(c, t, sub: str = "") -> list[str]:
    """A world export killed part-way (its marker is still there), given as --data DIR or DIR/<split>."""
    d = t / "world"
    shutil.copytree(c["imgs"], d / "a" / "x")
    write(d / ".vsae-incomplete", "{}")
    return _extract(c, t, d / sub)


def _extract(c, t, data: Path) -> list[str]:
    return ["extract", "--model", str(c["clip"]), "--hook", "resid.0", "--data", str(data), "--out", str(out_of(t)),
            "--batch-size", "2", "--num-workers", "0", "--quiet", "--threads", "1"]  # fmt: skip


def _mllm(c, t, *extra: str, captions: Path | None = None) -> list[str]:
    """`vsae extract-mllm` of the shipped tiny LLaVA on the catalogue's 4 images, one caption each."""
    from vsae.world.llava import shipped_llava_dir

    if captions is None:
        captions = write(t / "caps.txt", "a red square\na blue circle\na green disk\na grey cross\n")
    return ["extract-mllm", "--model", str(shipped_llava_dir()), "--hook", "resid.0", "--data", str(c["imgs"]),
            "--captions", str(captions), "--out", str(out_of(t)), "--batch-size", "2", "--quiet", *extra]  # fmt: skip


def _sd(c, t, *extra: str) -> list[str]:
    """`vsae steer diffusion` of the shipped tiny pipeline and text SAE, as small as it runs."""
    return ["steer", "diffusion", "--out", str(out_of(t)), "--n-eval", "0", "--steps", "1", "--n-prompts", "2",
            "--latents", "0", "--discovery-latents", "1", "--discovery-prompts", "1", "--quiet", *extra]  # fmt: skip


def _shared(c, t, *extra: str) -> list[str]:
    """`vsae eval shared` on an extract-mllm store of the catalogue's 4 images (built once, beside
    the shared inputs) and a random SAE of its width, with a valid --attributes file."""
    from vsae.sae import SAEConfig, build, save

    d = c["root"] / "commands" / "shared"
    if not (d / "sae").exists():
        d.mkdir()
        main(_mllm(c, d))
        width = json.loads((out_of(d) / "manifest.json").read_text())["d"]
        recs = [{"path": f"{i}.png", "colour": ["red", "blue"][i % 2], "shape": ["square", "circle"][i // 2]}
                for i in range(4)]  # fmt: skip
        write(d / "attributes.json", json.dumps(recs))
        save(build(SAEConfig(arch="topk", d_in=width, d_sae=2 * width, k=4), seed=0), d / "sae")
    return ["eval", "shared", "--acts", str(out_of(d)), "--sae", str(d / "sae"), "--out", str(out_of(t)),
            "--attributes", str(d / "attributes.json"), "--quiet", *extra]  # fmt: skip


def _emb_store(c, t, items: Callable[[list[str]], list[str]] = lambda x: x) -> list[str]:
    """`eval ms` of the labelled store (--acts, --sae) with a similarity *store* of one row per image
    whose images.json lists `items(the store's own items)` (the same source otherwise)."""
    e = Path(shutil.copytree(c["lab"], t / "emb"))
    tab = json.loads((e / "images.json").read_text())
    (e / "images.json").write_text(json.dumps({**tab, "items": items(tab["items"])}))
    return ["eval", "ms", "--acts", str(c["lab"]), "--sae", str(c["sae"]), "--embeddings", str(e),
            "--out", str(out_of(t)), "--quiet"]  # fmt: skip


def _cases() -> list[Case]:
    cs: list[Case] = []
    # 1. outputs (and their temporary names) that are symlinks out of --out: refused, target untouched
    links = {
        "ms": ["ms.json", "ms.json.tmp", "ms_histogram.png", "ms_histogram.png.tmp", "ms_scores.safetensors",
               "ms_scores.safetensors.tmp"],
        "top-images": ["top_images.json", "top_images.json.tmp", "top_images.safetensors",
                       "top_images.safetensors.tmp"],
        "recon": ["recon.json", "recon.json.tmp", "firing_frequency.png"],
        "uniqueness": ["uniqueness.json", "uniqueness.json.tmp"],
        "hierarchy": ["hierarchy.json", "depth_per_group.png"],
        "names": ["names.json", "names.json.tmp"],
        "probe": ["probe.json", "probe.json.tmp"],
        "ood": ["ood.json", "roc.png"],
        "encode": ["manifest.json.tmp"],
        "train": ["topk-x2-k4/log.jsonl", "train_state.json.tmp", "topk-x2-k4/config.json.tmp"],
    }  # fmt: skip
    for cmd, files in links.items():
        for f in files:
            cs.append(Case(f"{cmd}-symlinked-{f.replace('/', '-')}", linked_output(COMMANDS[cmd], f),
                           r"is a symlink; vsae never writes through a link"))  # fmt: skip
    for cmd in ("ms", "top-images", "recon", "encode"):
        cs.append(
            Case(
                f"{cmd}-symlinked-lock", linked_output(COMMANDS[cmd], LOCK_NAME), r"\.vsae\.lock is a symlink"
            )
        )
    for f in ("images.json", "tokens.json", LOCK_NAME):  # (a linked images.json would name other images)
        cs.append(Case(f"extract-mllm-symlinked-{f}", linked_output(lambda c, t: _mllm(c, t), f),
                       r"is a symlink; vsae never writes through a link", sub=True))  # fmt: skip
    for f in ("results.json", "index.html", LOCK_NAME):  # (subprocesses: model loading draws on stderr)
        cs.append(Case(f"steer-diffusion-symlinked-{f}", linked_output(lambda c, t: _sd(c, t), f),
                       r"is a symlink; vsae never writes through a link", sub=True))  # fmt: skip
    for f in ("shared.json", "shared_ratio.png", LOCK_NAME):
        cs.append(Case(f"shared-symlinked-{f}", linked_output(lambda c, t: _shared(c, t), f),
                       r"is a symlink; vsae never writes through a link"))  # fmt: skip
    # 2. a second writer into the same --out: refused at once, naming the holder
    for cmd in (
        "ms",
        "top-images",
        "recon",
        "uniqueness",
        "hierarchy",
        "names",
        "probe",
        "ood",
        "encode",
        "train",
    ):
        cs.append(Case(f"{cmd}-concurrent-writer", lambda c, t, cmd=cmd: COMMANDS[cmd](c, t),
                       rf"being written by another vsae process \(pid {os.getpid()}\)", hold_lock=True))  # fmt: skip
    cs.append(Case("extract-concurrent-writer", lambda c, t: _extract(c, t, c["imgs"]),
                   "being written by another vsae process", hold_lock=True))  # fmt: skip
    cs.append(Case("extract-mllm-concurrent-writer", lambda c, t: _mllm(c, t),
                   rf"being written by another vsae process \(pid {os.getpid()}\)", hold_lock=True,
                   sub=True))  # fmt: skip
    cs.append(Case("steer-diffusion-concurrent-writer", lambda c, t: _sd(c, t),
                   rf"being written by another vsae process \(pid {os.getpid()}\)", hold_lock=True,
                   sub=True))  # fmt: skip
    cs.append(Case("shared-concurrent-writer", lambda c, t: _shared(c, t),
                   rf"being written by another vsae process \(pid {os.getpid()}\)", hold_lock=True))  # fmt: skip
    cs.append(Case("export-concurrent-writer", lambda c, t: export(c, t, "--n", "train=2"),
                   "being written by another vsae process", hold_lock=True))  # fmt: skip
    # 3. FIFOs (and other special files) where a file is read: refused, never blocked on
    fifos = {
        "ms-embeddings": lambda c, t: ms(c, t, emb=fifo(t / "emb.npy")),
        "names-words": lambda c, t: names(c, t, words=fifo(t / "words.txt")),
        "names-word-embeddings": lambda c, t: names(c, t, wemb=fifo(t / "w.npy")),
        "hierarchy-table": lambda c, t: hierarchy(c, t, table=fifo(t / "tab" / "images.json")),
        "hierarchy-taxonomy": lambda c, t: hierarchy(c, t, tax=fifo(t / "tax.json")),
        "uniqueness-top-images": lambda c, t: uniqueness(c, t, top=fifo(t / "top.safetensors")),
        "recon-sae-weights": lambda c, t: recon(c, t, sae=damaged_sae(fifo_of="sae.safetensors")(c, t)),
        "encode-sae-weights": lambda c, t: encode(c, t, sae=damaged_sae(fifo_of="sae.safetensors")(c, t)),
        "probe-images-json": lambda c, t: probe(c, t, train=_fifo_table_store(c, t)),
        "names-attributes": lambda c, t: names(c, t, extra=("--table", str(c["table"]), "--attributes",
                                                            str(fifo(t / "attributes.json")))),
        "ms-embeddings-dev-zero": lambda c, t: ms(c, t, emb=_link(t / "emb.npy", "/dev/zero")),
    }  # fmt: skip
    fifos["extract-mllm-captions"] = lambda c, t: _mllm(c, t, captions=fifo(t / "caps.txt"))
    fifos["steer-diffusion-prompts"] = lambda c, t: _sd(c, t, "--prompts", str(fifo(t / "prompts.txt")))
    fifos["shared-attributes"] = lambda c, t: [
        *_shared(c, t)[:-3],
        "--attributes",
        str(fifo(t / "a.json")),
        "--quiet",
    ]
    for name, make in fifos.items():
        cs.append(Case(f"fifo-{name}", make, r"is (a FIFO|a character device), not a regular file", sub=True))
    # 4. similarity embeddings that are not one finite float row per image
    embs = {
        "nan": (with_nan(rand(N, 4), np.nan), r"holds 1 NaN or Inf values"),
        "inf": (with_nan(rand(N, 4), np.inf), r"holds 1 NaN or Inf values"),
        "all-nan": (np.full((N, 4), np.nan, np.float32), r"holds 1600 NaN or Inf"),
        "strings": (np.array([["a"] * 4] * N), r"holds <U1 values, not numbers"),
        "bool": (np.ones((N, 4), bool), r"holds bool values, not numbers"),
        "one-dimensional": (rand(N), r"shape \(400,\); expected \[rows, width\]"),
        "three-dimensional": (rand(N, 2, 2), r"shape \(400, 2, 2\)"),
        "too-few-rows": (rand(7, 4), r"have 7 rows but the activations .* cover 400 images"),
        "empty": (np.zeros((0, 4), np.float32), r"have 0 rows"),
        "pickled-objects": (np.array([[1, 2]] * N, dtype=object), r"not a plain numpy array"),
    }
    for name, (a, match) in embs.items():
        cs.append(Case(f"ms-embeddings-{name}", emb_of(a), match))
    cs += [
        Case("ms-embeddings-bfloat16-safetensors", emb_of(bf16_safetensors), r"not a readable \.safetensors"),
        Case(
            "ms-embeddings-garbage-npy",
            emb_of(lambda t: write(t / "e.npy", b"\x93NUMPY garbage")),
            "not a plain numpy array",
        ),  # fmt: skip
        Case(
            "ms-embeddings-wrong-suffix",
            emb_of(lambda t: write(t / "e.txt", "1 2 3")),
            "unsupported file type",
        ),
        Case(
            "names-image-embeddings-nan",
            lambda c, t: names(c, t, emb=npy(t, with_nan(rand(N, 4), np.nan))),
            "NaN or Inf",
        ),  # fmt: skip
        Case(
            "names-word-embeddings-strings",
            lambda c, t: names(c, t, wemb=npy(t, np.array([["x"] * 4] * 2))),
            "not numbers",
        ),  # fmt: skip
    ]
    # 5. latent stores whose arrays disagree with their width or hold non-finite values
    for name, (key, fn, match) in LATENT_EDITS.items():
        for cmd in ("ms", "top-images"):
            cs.append(Case(f"{cmd}-latents-{name}", lambda c, t, k=key, f=fn, cmd=cmd:
                           COMMANDS[cmd](c, t, lat=edited_latents(k, f)(c, t)), match))  # fmt: skip
    # 6. top-images files
    for name, (make_file, match) in TOP_FILES.items():
        cs.append(
            Case(f"uniqueness-top-{name}", lambda c, t, m=make_file: uniqueness(c, t, top=m(c, t)), match)
        )
    for name in ("index-negative", "shapes-differ", "values-nan"):
        make_file, match = TOP_FILES[name]
        cs.append(
            Case(f"hierarchy-top-{name}", lambda c, t, m=make_file: hierarchy(c, t, top=m(c, t)), match)
        )
        cs.append(Case(f"names-top-{name}", lambda c, t, m=make_file: names(c, t, top=m(c, t)), match))
    # 7. image tables
    for name, (make_table, match) in TABLES.items():
        cs.append(
            Case(f"hierarchy-table-{name}", lambda c, t, m=make_table: hierarchy(c, t, table=m(c, t)), match)
        )
    for name in ("binary", "labels-beyond-classes", "labels-strings"):
        make_table, match = TABLES[name]
        cs.append(Case(f"probe-table-{name}", lambda c, t, m=make_table: probe(c, t, train=_store_with(c, t, m)),
                       match))  # fmt: skip
    # 8. taxonomies, word lists, attributes
    cs += [
        Case(
            "hierarchy-taxonomy-binary",
            lambda c, t: hierarchy(c, t, tax=write(t / "x.json", b"\xff\x00")),
            r"taxonomy .* is not valid JSON",
        ),  # fmt: skip
        Case(
            "hierarchy-taxonomy-list",
            lambda c, t: hierarchy(c, t, tax=write(t / "x.json", "[1]")),
            "not a taxonomy",
        ),
        Case(
            "hierarchy-taxonomy-numbers",
            lambda c, t: hierarchy(c, t, tax=write(t / "x.json", '{"a": [1, 2]}')),
            "every path level must be a string",
        ),  # fmt: skip
        Case(
            "hierarchy-taxonomy-directory",
            lambda c, t: hierarchy(c, t, tax=_mkdir(t / "x.json")),
            "a directory, not a regular file",
        ),  # fmt: skip
        Case(
            "names-words-binary",
            lambda c, t: names(c, t, words=write(t / "w.txt", b"\xff\xfe\x80")),
            "is not UTF-8 text",
        ),  # fmt: skip
        Case(
            "names-words-empty", lambda c, t: names(c, t, words=write(t / "w.txt", "\n \n")), "has no words"
        ),
        Case("names-words-directory", lambda c, t: names(c, t, words=_mkdir(t / "w.txt")), "a directory"),
        Case(
            "names-attributes-binary",
            lambda c, t: names(
                c,
                t,
                extra=("--table", str(c["table"]), "--attributes", str(write(t / "a.json", b"\x80\x81"))),
            ),
            r"attributes file .* is not valid JSON",
        ),  # fmt: skip
    ]
    # 9. damaged SAE checkpoints, for each reader of one
    for name, (make_sae, match) in SAES.items():
        for cmd in ("recon", "encode", "top-images", "ood"):
            cs.append(
                Case(
                    f"{cmd}-sae-{name}",
                    lambda c, t, m=make_sae, cmd=cmd: _with_sae(cmd, c, t, m(c, t)),
                    match,
                )
            )
    # 10. numbers
    nums = [
        ("recon-batch-size-zero", lambda c, t: recon(c, t, extra=("--batch-size", "0")), "--batch-size 0: must be"),
        ("recon-batch-size-negative", lambda c, t: recon(c, t, extra=("--batch-size", "-4")), "--batch-size -4"),
        ("recon-max-rows-zero", lambda c, t: recon(c, t, extra=("--max-rows", "0")), "--max-rows 0: must be"),
        ("top-images-k-zero", lambda c, t: top_images(c, t, extra=("-k", "0")), "--k 0: must be"),
        ("top-images-k-beyond-images", lambda c, t: top_images(c, t, extra=("-k", "401")),
         r"--k 401 is more than the 400 images"),
        ("probe-c-zero", lambda c, t: probe(c, t, extra=("--c", "0")), "--c 0.0: the inverse regularisation"),
        ("probe-c-negative", lambda c, t: probe(c, t, extra=("--c", "-1")), "--c -1.0"),
        ("probe-c-nan", lambda c, t: probe(c, t, extra=("--c", "nan")), "--c nan"),
        ("probe-c-inf", lambda c, t: probe(c, t, extra=("--c", "inf")), "--c inf"),
        ("probe-max-iter-zero", lambda c, t: probe(c, t, extra=("--max-iter", "0")), "--max-iter 0: must be"),
        ("hierarchy-groups-nan", lambda c, t: hierarchy(c, t, extra=("--groups", "nan")), "--groups nan: give"),
        ("hierarchy-groups-sum", lambda c, t: hierarchy(c, t, extra=("--groups", "0.5,0.6")), "sum to 1"),
        ("hierarchy-groups-negative", lambda c, t: hierarchy(c, t, extra=("--groups", "-0.5,1.5")), "in \\(0, 1\\]"),
        ("ms-one-image-store", lambda c, t: ["eval", "ms", "--acts", str(one_image_store(c, t)), "--embeddings",
                                             str(npy(t, rand(1, 4))), "--out", str(out_of(t)), "--quiet"],
         "covers 1 image\\(s\\); the MS compares pairs"),
        ("encode-batch-size-negative", lambda c, t: encode(c, t, extra=("--batch-size", "-1")), "--batch-size -1"),
        ("extract-mllm-batch-size-zero", lambda c, t: _mllm(c, t, "--batch-size", "0"), "--batch-size 0: must be"),
        ("extract-mllm-n-images-zero", lambda c, t: _mllm(c, t, "--n-images", "0"), "--n-images 0: must be"),
        ("extract-mllm-n-images-negative", lambda c, t: _mllm(c, t, "--n-images", "-2"), "--n-images -2: must be"),
        ("export-n-huge", lambda c, t: export(c, t, "--n", "train=99999999999"), "must be an integer from 0 to"),
        ("export-n-text", lambda c, t: export(c, t, "--n", "train=many"), "bad --n 'train=many'"),
        ("export-bad-split", lambda c, t: export(c, t, "--n", "nowhere=3"), "unknown world split"),
    ]  # fmt: skip
    cs += [Case(i, m, r) for i, m, r in nums]
    sd_nums = [
        ("steps-zero", ("--steps", "0"), r"--steps \(0\) and --batch-size \(64\) must be >= 1"),
        ("batch-size-zero", ("--batch-size", "0"), r"--batch-size \(0\) must be >= 1"),
        ("strength-nan", ("--strength", "nan"), "--strength must be a finite number, got nan"),
        ("guidance-nan", ("--guidance", "nan"), r"--guidance must be a finite number in \[0, inf\], got nan"),
        ("eta-negative", ("--eta", "-1"), r"--eta must be a finite number in \[0, 1\], got -1"),
        ("sweep-text", ("--sweep", "a,b"), "--sweep 'a,b': give comma-separated numbers"),
        ("latent-beyond-d", ("--latents", "99999"), "out of range"),
    ]
    sh_nums = [
        ("top-k-zero", ("--top-k", "0"), "--top-k, --batch-size and --min-fires must be at least 1"),
        ("batch-size-zero", ("--batch-size", "0"), "must be at least 1"),
        ("min-fires-zero", ("--min-fires", "0"), "must be at least 1"),
        ("auroc-nan", ("--auroc", "nan"), r"--auroc must be in \(0.5, 1\]"),
        ("auroc-above-one", ("--auroc", "2"), r"--auroc must be in \(0.5, 1\]"),
        ("alpha-zero", ("--alpha", "0"), r"--alpha in \(0, 1\)"),
        ("alpha-nan", ("--alpha", "nan"), r"--alpha in \(0, 1\)"),
    ]
    cs += [Case(f"shared-{i}", lambda c, t, e=e: _shared(c, t, *e), r) for i, e, r in sh_nums]
    cs += [Case(f"steer-diffusion-{i}", lambda c, t, e=e: _sd(c, t, *e), r, sub=True) for i, e, r in sd_nums]
    # MS embeddings of other images than the store's own (a changed folder, a reused --embed-cache)
    cs.append(Case("ms-embedding-store-of-other-images", lambda c, t: _emb_store(c, t, lambda x: x[::-1]),
                   r"embedded other images than the activations .*: image 0 is d/399\.png there but "
                   r"a/0\.png in"))  # fmt: skip
    # the --table must describe the images the top images index (both record their source)
    elsewhere = top_file(meta={"data": json.dumps(["folder", "/elsewhere", None])})
    cs += [
        Case("hierarchy-table-of-other-images", lambda c, t: hierarchy(c, t, top=elsewhere(c, t)),
             r"--table .* describes the images of .* but the top images index those of /elsewhere"),
        Case("names-table-of-other-images", lambda c, t: names(c, t, top=elsewhere(c, t), extra=(
            "--table", str(c["table"]))), r"but the top images index those of /elsewhere"),
    ]  # fmt: skip

    # steering with a damaged SAE (the shipped tiny LLaVA and its steering SAE, copied and damaged)
    def steer(make_sae: Callable) -> Callable:
        return lambda c, t: [
            "steer",
            "mllm",
            "--sae",
            str(make_sae(c, t)),
            "--out",
            str(out_of(t)),
            "--quiet",
        ]

    cs += [
        # (subprocesses: in this process transformers draws its weight-loading bar on stderr despite --quiet)
        Case("steer-sae-inf-decoder-bias", steer(damaged_sae("b_dec_d", src="steering")), "b_dec_d holds NaN or Inf",
             sub=True),
        Case("steer-sae-nan-encoder", steer(damaged_sae("W_enc_Fd", float("nan"), src="steering")), "W_enc_Fd holds",
             sub=True),
        Case("steer-sae-fifo-weights", steer(damaged_sae(fifo_of="sae.safetensors", src="steering")),
             "SAE weights .* is a FIFO, not a regular file", sub=True),
    ]  # fmt: skip
    # serve's eval inputs (read before the server starts)
    cs += [
        Case("serve-ms-fifo", lambda c, t: serve(c, "--ms", fifo(t / "ms" / "ms_scores.safetensors")),
             "MS scores .* is a FIFO, not a regular file", sub=True),
        Case("serve-ms-garbage", lambda c, t: serve(c, "--ms", write(t / "ms" / "ms_scores.safetensors", b"\0" * 9)),
             "cannot read MS scores"),
        Case("serve-names-fifo", lambda c, t: serve(c, "--names", fifo(t / "nm" / "names.json")),
             "eval result .* is a FIFO, not a regular file", sub=True),
        Case("serve-names-binary", lambda c, t: serve(c, "--names", write(t / "nm" / "names.json", b"\xff\x00")),
             r"eval result .* is not valid JSON"),
        Case("serve-names-a-list", lambda c, t: serve(c, "--names", write(t / "nm" / "names.json", "[1]")),
             "is not a JSON object"),
    ]  # fmt: skip
    # 11. resumed steps with other inputs; a killed export
    cs += [
        Case(
            "encode-resume-retrained-sae", resume_encode_with_retrained, "encoded from another SAE's weights"
        ),
        Case("extract-killed-world-export", incomplete_export, "unfinished `vsae world export`"),
        Case(
            "extract-killed-world-export-split-folder",
            lambda c, t: incomplete_export(c, t, "a"),
            "unfinished `vsae world export`",
        ),
    ]
    return cs


def _with_sae(cmd: str, c, t, sae: Path) -> list[str]:
    if cmd == "top-images":  # encoding on the fly
        return ["eval", "top-images", "--acts", str(c["good"]), "--sae", str(sae), "--out", str(out_of(t)),
                "-k", "4", "--quiet"]  # fmt: skip
    return COMMANDS[cmd](c, t, sae=sae)


def _link(p: Path, target: str) -> Path:
    os.symlink(target, p)
    return p


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True)
    return p


def _store_with(c, t, make_table: Callable) -> Path:
    """A copy of the labelled store whose images.json is made by `make_table`."""
    s = Path(shutil.copytree(c["lab"], t / "labstore"))
    (s / "images.json").unlink()
    shutil.copy(make_table(c, t), s / "images.json")
    return s


def _fifo_table_store(c, t) -> Path:
    s = Path(shutil.copytree(c["lab"], t / "labstore"))
    fifo(s / "images.json")
    return s


def _bad_vectors(t: Path, as_fifo: bool = False) -> Path:
    """An explain output whose explanations.safetensors is garbage (or a FIFO)."""
    d = t / "ex"
    write(d / "explanations.json", json.dumps({"latents": [{"latent": 0, "phrase": "red"}]}))
    fifo(d / "explanations.safetensors") if as_fifo else write(d / "explanations.safetensors", b"\0" * 9)
    return d


def _explain_cases() -> list[Case]:
    """`vsae eval explain` (issue 29). After the judge loads, transformers draws on stderr: those run
    as subprocesses."""
    cs = [
        Case(f"explain-symlinked-{f}", linked_output(explain, f), r"is a symlink; vsae never writes through a link",
             sub=True)
        for f in ("explanations.json", "explanations.json.tmp", "explanations.safetensors")
    ]  # fmt: skip
    cs += [
        Case("explain-concurrent-writer", explain, rf"being written by another vsae process \(pid {os.getpid()}\)",
             hold_lock=True),
        Case("fifo-explain-words", lambda c, t: explain(c, t, words=fifo(t / "words.txt")),
             r"is a FIFO, not a regular file", sub=True),
        Case("explain-words-binary", lambda c, t: explain(c, t, words=write(t / "w.txt", b"\xff\xfe\x80")),
             "is not UTF-8 text"),
        Case("explain-words-empty", lambda c, t: explain(c, t, words=write(t / "w.txt", "\n \n")), "has no words"),
        Case("explain-words-json-not-lists", lambda c, t: explain(c, t, words=write(t / "w.json", '{"a": "red"}')),
             "is not an object of word lists"),
        Case("serve-explanations-missing", lambda c, t: serve(c, "--explanations", t / "nothing"),
             "--explanations: .* has no explanations.json"),
        Case("serve-explanations-a-list", lambda c, t: serve(c, "--explanations", write(t / "ex" / "explanations.json",
             "[1]").parent), "has no 'latents' list"),
        Case("serve-explanations-vectors-garbage", lambda c, t: serve(c, "--explanations", _bad_vectors(t)),
             "cannot read explanation vectors"),
        Case("serve-explanations-vectors-fifo", lambda c, t: serve(c, "--explanations", _bad_vectors(t, True)),
             "is a FIFO, not a regular file", sub=True),
        Case("explain-unknown-explainer", lambda c, t: explain(c, t, extra=("--explainer", "nope")),
             "unknown explainer 'nope'; use one of: mllm, vocab"),
        Case("explain-mllm-without-model", lambda c, t: explain(c, t, extra=("--explainer", "mllm")),
             "--explainer mllm needs --explainer-model"),
        Case("explain-model-without-mllm", lambda c, t: explain(c, t, extra=("--explainer-model", "x")),
             "--explainer-model is for --explainer mllm"),
        Case("explain-n-top-zero", lambda c, t: explain(c, t, extra=("--n-top", "0")), "--n-top 0: must be"),
        Case("explain-n-top-one", lambda c, t: explain(c, t, extra=("--n-top", "1")), "need at least 2 top images"),
        Case("explain-n-random-zero", lambda c, t: explain(c, t, extra=("--n-random", "0")), "--n-random 0"),
        Case("explain-max-latents-zero", lambda c, t: explain(c, t, extra=("--max-latents", "0")), "--max-latents 0"),
        Case("explain-parsimony-one", lambda c, t: explain(c, t, extra=("--parsimony", "1")), "--parsimony 1.0"),
        Case("explain-sets-beyond-images", lambda c, t: explain(c, t, extra=("--n-random", "500")),
             "400 images are fewer than", sub=True),
        Case("explain-image-embeddings-nan", lambda c, t: explain(c, t, emb=npy(t, with_nan(rand(N, 64), np.nan))),
             "NaN", sub=True),
        Case("explain-image-embeddings-rows", lambda c, t: explain(c, t, emb=npy(t, rand(N - 1, 64))),
             "have 399 rows but the activations", sub=True),
        Case("explain-image-embeddings-width", lambda c, t: explain(c, t, emb=npy(t, rand(N, 5))),
             "image embeddings have width 5 but the judge's text embeddings 64", sub=True),
        Case("explain-judge-not-clip", lambda c, t: explain(c, t, extra=("--judge-clip", str(t / "nothing"))),
             "judge .* has no usable text tower", sub=True),
        Case("explain-attributes-without-table", lambda c, t: explain(c, t, extra=("--attributes", str(t / "a.json"))),
             "--attributes needs --table"),
    ]  # fmt: skip
    return cs


CASES = _cases() + _explain_cases()


def test_table_of_the_same_images_is_accepted(cx, tmp_path):
    """The belongs-to check compares what both files record: the same source passes."""
    same = top_file(meta={"data": json.dumps(["folder", str(cx["table_obj"]["root"]), None])})(cx, tmp_path)
    main(hierarchy(cx, tmp_path, top=same))
    assert (out_of(tmp_path) / "hierarchy.json").is_file()


def test_embedding_store_of_the_same_images_is_accepted(cx, tmp_path):
    """The same-images check of `eval ms` compares what both images.json record: the same items pass."""
    main(_emb_store(cx, tmp_path))
    assert (out_of(tmp_path) / "ms.json").is_file()


def test_catalogue_size():
    assert len(CASES) >= 100 and len({c.id for c in CASES}) == len(CASES)


def _outside(snap: dict, out: str = "out") -> dict:
    return {k: v for k, v in snap.items() if k != out and not k.startswith(out + os.sep)}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line(case: Case, cx, tmp_path, capsys):
    argv = case.make(cx, tmp_path)
    v = victim(tmp_path)
    before, shared = _outside(snapshot(tmp_path)), snapshot(cx["root"])
    if case.hold_lock:
        with output_lock(out_of(tmp_path)):
            code, err = run_cli(argv, case.sub, capsys)
    else:
        code, err = run_cli(argv, case.sub, capsys)
    lines = err.strip().splitlines()
    assert code == 2, (case.id, err[-3000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), (case.id, err[-3000:])
    assert "Traceback" not in err
    assert re.search(case.match, lines[0]), (case.id, lines[0])
    # nothing written outside --out, nor through a link
    assert v.read_bytes() == VICTIM, case.id
    assert _outside(snapshot(tmp_path)) == before, case.id
    assert snapshot(cx["root"]) == shared, case.id
    # nothing left in --out that a rerun trips over
    out = out_of(tmp_path)
    if out.exists() and not case.hold_lock:
        assert not os.path.lexists(out / LOCK_NAME) or (out / LOCK_NAME).is_symlink(), case.id
        left = [p for p in out.rglob("*.tmp") if not p.is_symlink()]
        assert not left, (case.id, left)
