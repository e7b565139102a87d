"""Issue 30 on a tiny random-weight timm-style CNN classifier loaded through a `python:` factory:
the token selection an SAE was trained on is checked in every command that applies it to rows
(--force overrides), the splice reports what it does to the class distribution (checked against
a direct forward hook and direct formulas), MS is shown beside its embedding baseline on a fitted
axis, and the probe's standardisation is a flag."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vsae.cli import main

FACTORY = '''
import numpy as np
import torch
from torch import nn


class TinyNet(nn.Module):
    """timm's layout: conv_stem, blocks (an nn.Sequential), pooled classifier (3 classes)."""

    def __init__(self):
        super().__init__()
        self.conv_stem = nn.Conv2d(3, 8, 4, stride=4)
        self.blocks = nn.Sequential(
            nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()),
            nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()),
        )
        self.classifier = nn.Linear(8, 3)

    def forward(self, x):
        return self.classifier(self.blocks(self.conv_stem(x)).mean((2, 3)))


def preprocess(images):
    a = [np.asarray(im.convert("RGB").resize((16, 16)), np.float32) / 255 for im in images]
    return torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).contiguous()


def make():
    torch.manual_seed(0)
    return TinyNet(), preprocess, {"blocks": "blocks"}
'''
CLASSES = ["cat", "dog", "fox"]
N_PER = 6


def _cli(args):
    try:
        main(args)
    except SystemExit as e:
        return e.code or 0
    return 0


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    """Images in 3 class folders; stores of resid.1 with tokens patches and mean; SAEs whose
    provenance is each store's (as `vsae train` records it)."""
    from vsae.extract import ExtractConfig, extract
    from vsae.sae import SAEConfig, build, save
    from vsae.store import ActivationStore

    root = tmp_path_factory.mktemp("cnn30")
    (root / "tinynet_factory.py").write_text(FACTORY)
    rng = np.random.default_rng(0)
    for c, name in enumerate(CLASSES):
        (root / "imgs" / name).mkdir(parents=True)
        for i in range(N_PER):
            a = rng.integers(0, 90, (20, 20, 3), dtype=np.uint8)
            a[..., c] += 140
            Image.fromarray(a).save(root / "imgs" / name / f"{i}.png")
    model = f"python:{root / 'tinynet_factory.py'}:make"
    common = dict(
        model=model, data=str(root / "imgs"), dtype="float32", progress=False, batch_size=8, num_workers=0
    )
    for tokens in ("patches", "mean"):
        extract(ExtractConfig(hooks=("resid.1",), tokens=tokens, out=str(root / f"acts-{tokens}"), **common))
        prov = ActivationStore.open(root / f"acts-{tokens}").provenance
        sae = build(SAEConfig(arch="topk", d_in=8, d_sae=32, k=4, provenance=dict(prov)), seed=0)
        save(sae, root / f"sae-{tokens}")
    emb = np.random.default_rng(1).normal(size=(len(CLASSES) * N_PER, 6)) + 1.5  # cosines ~0.7
    np.save(root / "emb.npy", emb.astype(np.float32))
    yield root, model
    sys.modules.pop("tinynet_factory", None)


# ----------------------------------------------------------------------------- token selection
def _commands(root, sae, acts, out):
    return {
        "recon": ["eval", "recon", "--acts", acts, "--sae", sae, "--out", out, "--quiet"],
        "ms": ["eval", "ms", "--acts", acts, "--sae", sae, "--embeddings", str(root / "emb.npy"),
               "--out", out, "--quiet", "--no-raw"],
        "top-images": ["eval", "top-images", "--acts", acts, "--sae", sae, "--out", out, "--k", "2", "--quiet"],
        "probe": ["eval", "probe", "--train", acts, "--eval", f"test={acts}", "--sae", sae, "--out", out],
        "ood": ["eval", "ood", "--in", acts, "--ood", f"shift={acts}", "--sae", sae, "--out", out],
        "encode": ["encode", "--sae", sae, "--acts", acts, "--out", out, "--quiet"],
    }  # fmt: skip


@pytest.mark.parametrize("command", ["recon", "ms", "top-images", "probe", "ood", "encode"])
def test_sae_of_mean_rows_on_a_patches_store_is_refused(cnn, tmp_path, capsys, command):
    """Old code: the SAE trained on `--tokens mean` rows ran on every patch row without a word."""
    root, _ = cnn
    args = _commands(root, str(root / "sae-mean"), str(root / "acts-patches"), str(tmp_path / "o"))[command]
    assert _cli(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: SAE "), err
    assert "tokens=mean" in err[0] and "tokens=patches" in err[0] and "--force" in err[0]
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
    # --force applies it anyway, saying so on stderr
    assert _cli([*args, "--force"]) == 0
    err = capsys.readouterr().err
    assert "warning: SAE" in err and "tokens=mean" in err and "tokens=patches" in err


def test_matching_selection_is_silent(cnn, tmp_path, capsys):
    root, _ = cnn
    args = _commands(root, str(root / "sae-patches"), str(root / "acts-patches"), str(tmp_path / "o"))[
        "recon"
    ]
    assert _cli(args) == 0
    assert "warning" not in capsys.readouterr().err


def test_splice_of_an_sae_of_mean_rows_is_refused(cnn, tmp_path, capsys):
    """The store matches (both mean) but the splice applies the SAE to every spatial token."""
    root, model = cnn
    args = ["eval", "recon", "--acts", str(root / "acts-mean"), "--sae", str(root / "sae-mean"),
            "--out", str(tmp_path / "o"), "--model", model, "--data", str(root / "imgs"), "--quiet"]  # fmt: skip
    assert _cli(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tokens=mean" in err[0] and "every token at hook=resid.1" in err[0], err
    assert _cli([*args, "--force"]) == 0


def test_selection_helper():
    from vsae.errors import VsaeError
    from vsae.sae.selection import check_rows, check_splice

    p = {"hook": "resid.3", "tokens": "random:16"}
    assert check_rows(p, {"hook": "resid.3", "tokens": "patches"}) is None  # random:K draws patches
    assert check_rows(p, {}) is None and check_rows({}, p) is None  # nothing recorded: not checked
    with pytest.raises(VsaeError, match="hook=resid.3, tokens=patches but the store holds hook=resid.4"):
        check_rows(p, {"hook": "resid.4", "tokens": "patches"})
    assert check_splice(p, "resid.3") is None
    assert check_splice({"hook": "embed", "tokens": "pooled"}, "embed") is None
    for bad, hook in (({"hook": "resid.3", "tokens": "cls"}, "resid.3"), (p, "resid.2")):
        with pytest.raises(VsaeError):
            check_splice(bad, hook)


# ----------------------------------------------------------------------------- splice output metrics
def test_output_agreement_against_direct_formulas():
    from scipy.special import log_softmax

    from vsae.eval.agreement import output_agreement

    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 7)) * 3
    b = a + rng.normal(size=(40, 7)) * 1.5
    z = rng.normal(size=(40, 7))
    y = rng.integers(0, 7, 40)
    r = output_agreement(a, b, y, z)
    la, lb, lz = log_softmax(a, 1), log_softmax(b, 1), log_softmax(z, 1)
    top5 = [len(set(np.argsort(-a[i])[:5]) & set(np.argsort(-b[i])[:5])) / 5 for i in range(40)]
    kl = [sum(np.exp(la[i, c]) * (la[i, c] - lb[i, c]) for c in range(7)) for i in range(40)]
    ce = {k: -np.mean([m[i, y[i]] for i in range(40)]) for k, m in (("o", la), ("s", lb), ("z", lz))}
    assert r["top1_agreement"] == np.mean(a.argmax(1) == b.argmax(1))
    assert r["top5_overlap"] == pytest.approx(np.mean(top5))
    assert r["kl_mean"] == pytest.approx(np.mean(kl)) and r["kl_max"] == pytest.approx(np.max(kl))
    assert r["accuracy_spliced"] == np.mean(b.argmax(1) == y)
    assert r["ce_spliced"] == pytest.approx(ce["s"])
    assert r["loss_recovered"] == pytest.approx((ce["z"] - ce["s"]) / (ce["z"] - ce["o"]))
    same = output_agreement(a, a)
    assert (
        same["top1_agreement"] == 1.0 and same["top5_overlap"] == 1.0 and same["kl_mean"] == pytest.approx(0)
    )


def test_recon_splice_reports_top1_top5_kl_and_loss_recovered(cnn, tmp_path, capsys):
    """Old code: only the embedding cosine. Every number re-derived with a plain forward hook."""
    from scipy.special import log_softmax

    from vsae.data import load_image, open_source
    from vsae.sae import load as load_sae

    root, model = cnn
    args = ["eval", "recon", "--acts", str(root / "acts-patches"), "--sae", str(root / "sae-patches"),
            "--out", str(tmp_path / "o"), "--model", model, "--data", str(root / "imgs"), "--quiet"]  # fmt: skip
    assert _cli(args) == 0
    printed = json.loads(capsys.readouterr().out)
    out = json.loads((tmp_path / "o" / "recon.json").read_text())["splice"]["output"]
    assert printed["splice"]["output"]["top1_agreement"] == out["top1_agreement"]

    sys.path.insert(0, str(root))
    import tinynet_factory as f

    net, prep, _ = f.make()
    src = open_source(str(root / "imgs"))
    x = prep([load_image(p) for p in src.items])
    sae = load_sae(root / "sae-patches")

    def run(replace):
        h = net.blocks[1].register_forward_hook(lambda m, i, o: replace(o)) if replace else None
        with torch.no_grad():
            y = net(x).double().numpy()
        if h:
            h.remove()
        return y

    def recon(o):  # [B, C, H, W] -> H*W tokens of width C through the SAE, and back
        B, C, H, W = o.shape
        t = o.flatten(2).transpose(1, 2).reshape(-1, C)
        return sae.decode(sae.encode(t)).reshape(B, H * W, C).transpose(1, 2).reshape(B, C, H, W)

    a, b, z = run(None), run(recon), run(torch.zeros_like)
    la, lb, lz = log_softmax(a, 1), log_softmax(b, 1), log_softmax(z, 1)
    y = np.asarray(src.labels)
    ce = [-np.mean(m[np.arange(len(y)), y]) for m in (la, lb, lz)]
    assert out["n_images"] == len(y) == 18 and out["n_classes"] == 3
    assert out["top1_agreement"] == pytest.approx(np.mean(a.argmax(1) == b.argmax(1)))
    top = [len(set(np.argsort(-a[i])[:3]) & set(np.argsort(-b[i])[:3])) / 3 for i in range(len(y))]
    assert out["top5_k"] == 3 and out["top5_overlap"] == pytest.approx(np.mean(top))  # 3 classes: k = 3
    assert out["kl_mean"] == pytest.approx(np.mean((np.exp(la) * (la - lb)).sum(1)), rel=1e-5, abs=1e-9)
    assert out["accuracy_original"] == pytest.approx(np.mean(a.argmax(1) == y))
    assert out["loss_recovered"] == pytest.approx((ce[2] - ce[1]) / (ce[2] - ce[0]), rel=1e-5)


# ----------------------------------------------------------------------------- MS, probe, help
def test_ms_reports_the_embedding_baseline_on_a_fitted_axis(cnn, tmp_path, capsys, monkeypatch):
    from vsae.eval import plots

    figs = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figs.append(fig) or Path(path))
    root, _ = cnn
    args = ["eval", "ms", "--acts", str(root / "acts-patches"), "--sae", str(root / "sae-patches"),
            "--embeddings", str(root / "emb.npy"), "--out", str(tmp_path / "o"), "--quiet"]  # fmt: skip
    assert _cli(args) == 0
    printed = capsys.readouterr().out
    res = json.loads((tmp_path / "o" / "ms.json").read_text())
    e = torch.as_tensor(np.load(root / "emb.npy"), dtype=torch.float64)
    n = e.shape[0]
    pairs = [float(torch.cosine_similarity(e[i], e[j], dim=0)) for i in range(n) for j in range(i + 1, n)]
    assert res["embedding_baseline"] == pytest.approx(np.mean(pairs))
    assert f"{np.mean(pairs):.4f}" in printed and "embedding baseline" in printed
    # the histogram's axis spans the scores (old code: -1..1, every score in one or two of 40 bins)
    ax = figs[0].axes[0]
    used = sum(1 for p in ax.patches if p.get_height() > 0)
    assert used >= 6, used
    lo, hi = ax.get_xlim()
    assert hi - lo < 1.0 and lo <= res["embedding_baseline"] <= hi


def test_probe_standardisation_is_a_flag_and_recorded(cnn, tmp_path, capsys):
    from sklearn.linear_model import LogisticRegression

    from vsae.store import ActivationStore

    root, _ = cnn
    acts = str(root / "acts-mean")
    base = ["eval", "probe", "--train", acts, "--eval", f"test={acts}", "--sae", str(root / "sae-mean")]
    assert _cli([*base, "--out", str(tmp_path / "a"), "--no-standardize"]) == 0
    res = json.loads((tmp_path / "a" / "probe.json").read_text())
    assert res["standardization"] == {"raw": "none", "sae": "none"}
    s = ActivationStore.open(acts)
    x, y = s[0 : len(s)].double().numpy(), np.repeat(np.arange(3), N_PER)
    direct = LogisticRegression(C=1.0, max_iter=1000, random_state=0).fit(x, y)
    assert res["accuracy"]["raw"]["test"] == pytest.approx(np.mean(direct.predict(x) == y))
    assert _cli([*base, "--out", str(tmp_path / "b")]) == 0
    res = json.loads((tmp_path / "b" / "probe.json").read_text())
    assert res["standardization"]["raw"].startswith("centred and scaled")
    assert res["standardization"]["sae"].startswith("scaled to unit variance, not centred")


@pytest.mark.parametrize("command", ["top-images", "probe", "uniqueness", "names"])
def test_out_help_promises_no_png(command, capsys):
    """Old code: "Output directory (JSON + PNG)" though neither writes a figure."""
    assert _cli(["eval", command, "--help"]) == 0
    text = capsys.readouterr().out
    out_help = text[text.index("--out") :].split("\n  --")[0]
    assert "PNG" not in out_help


def test_selection_normalises_what_models_record():
    """The shipped text SAE records `resid.-1` and `all (padding excluded)`: it fits a splice at the
    text encoder's last block, and a store at resid.3 is not flagged for the negative index."""
    from vsae.sae.selection import check_rows, check_splice

    p = {"hook": "resid.-1", "tokens": "all (padding excluded)"}
    assert check_splice(p, "resid.3", canonical=lambda h: "resid.3" if h == "resid.-1" else h) is None
    assert check_rows(p, {"hook": "resid.3", "tokens": "all"}) is None
