"""The shapes world's tiny text-to-image model: folding, deterministic training, the judge of
generated images, and the shipped model (loads and generates; quality in the slow rebuild)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vsae.world import generate


def test_fold_is_lossless():
    from vsae.world.diffusion.t2i_model import fold, unfold

    x = torch.randn(3, 3, 32, 32)
    f = fold(x, 4)
    assert f.shape == (3, 48, 8, 8)
    assert torch.equal(unfold(f, 4), x)
    assert torch.equal(f[0, :, 0, 0].reshape(3, 4, 4), x[0, :, :4, :4])  # channels = one 4x4 patch


@pytest.mark.parametrize("kind", ["sample", "v_prediction", "epsilon"])
def test_x0_estimate_matches_the_ddim_step_and_inverts_the_noising(kind):
    from diffusers import DDIMScheduler

    from vsae.world.diffusion.t2i_model import UNetConfig, build_scheduler, x0_estimate

    train = build_scheduler(UNetConfig(prediction_type=kind))
    ddim = DDIMScheduler.from_config(train.config, clip_sample=False)
    ddim.set_timesteps(10)
    t = ddim.timesteps[3]
    g = torch.Generator().manual_seed(0)
    x_t, pred = torch.randn(4, 48, 8, 8, generator=g), torch.randn(4, 48, 8, 8, generator=g)
    a = ddim.alphas_cumprod[t].expand(4)
    expected = ddim.step(pred, t, x_t, eta=0.0).pred_original_sample
    torch.testing.assert_close(x0_estimate(pred, x_t, a, kind), expected, rtol=1e-4, atol=1e-4)
    # the estimate from the true target is the clean image
    x0, noise = torch.randn(4, 48, 8, 8, generator=g), torch.randn(4, 48, 8, 8, generator=g)
    ts = torch.full((4,), int(t))
    xt = train.add_noise(x0, noise, ts)
    target = {"sample": x0, "epsilon": noise}.get(kind)
    target = train.get_velocity(x0, noise, ts) if target is None else target
    torch.testing.assert_close(
        x0_estimate(target, xt, train.alphas_cumprod[ts], kind), x0, rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize(
    ("kind", "loss", "gamma", "weighted"),
    [
        ("epsilon", "prediction", 5.0, True),
        ("epsilon", "prediction", 0.0, False),
        ("v_prediction", "prediction", 5.0, True),
        ("sample", "sample", 0.0, True),
        ("sample", "sample", 0.0, False),
    ],
)
def test_diffusion_loss_matches_the_formula(kind, loss, gamma, weighted):
    from vsae.world.diffusion.t2i_model import UNetConfig, build_scheduler
    from vsae.world.diffusion.t2i_train import DiffusionTrainConfig, diffusion_loss

    cfg = DiffusionTrainConfig(unet=UNetConfig(prediction_type=kind), loss=loss, min_snr=gamma)
    sched = build_scheduler(cfg.unet)
    g = torch.Generator().manual_seed(1)
    x0, noise, pred = (torch.randn(5, 48, 8, 8, generator=g) for _ in range(3))
    t = torch.tensor([0, 30, 250, 600, 990])
    w = torch.rand(5, 48, 8, 8, generator=g) * 4 + 1 if weighted else torch.ones(5, 48, 8, 8)
    a = sched.alphas_cumprod.float()[t].double().reshape(-1, 1, 1, 1)
    x_t = (a.sqrt() * x0 + (1 - a).sqrt() * noise).float()
    direct_target = {"epsilon": noise, "sample": x0, "v_prediction": a.sqrt() * noise - (1 - a).sqrt() * x0}[
        kind
    ]
    err = (w * (pred.double() - direct_target) ** 2).mean(dim=(1, 2, 3))  # per image
    snr = (a / (1 - a)).flatten()
    if gamma:
        err = err * torch.clamp(snr, max=gamma) / {"epsilon": snr, "v_prediction": snr + 1}[kind]
    got = diffusion_loss(pred, x0, noise, x_t, t, sched, cfg, w if weighted else None)
    torch.testing.assert_close(got.double(), err.mean(), rtol=1e-4, atol=1e-5)


def test_object_footprint_is_the_dilated_object():
    from scipy.ndimage import binary_dilation

    from vsae.world.generate import object_alpha, object_footprint

    b = generate("train", 40, seed=3)
    alpha, foot = object_alpha(b.codes), object_footprint(b.codes)
    for a, f in zip(alpha, foot):
        assert np.array_equal(f.astype(bool), binary_dilation(a > 0, structure=np.ones((3, 3))))
    # outlined images: every outline pixel (white on dark, black on light) is in the footprint
    for img, f, r in zip(b.images_NHWC, foot, b.records):
        if r.outline == "outlined":
            level = 255 if r.tone == "dark" else 0
            ring = np.all(img == level, axis=-1)
            assert ring.any() and f[ring].all()


def test_epsilon_models_sample_from_t951_others_from_the_last_step():
    from diffusers import DDIMScheduler

    from vsae.world.diffusion.t2i_model import UNetConfig, build_scheduler

    first = {}
    for kind in ("epsilon", "sample", "v_prediction"):
        ddim = DDIMScheduler.from_config(build_scheduler(UNetConfig(prediction_type=kind)).config)
        ddim.set_timesteps(20)
        first[kind] = int(ddim.timesteps[0])
    assert first == {"epsilon": 951, "sample": 999, "v_prediction": 999}


def test_bad_diffusion_configs_are_one_line_errors(tmp_path):
    from vsae.errors import VsaeError
    from vsae.world.diffusion.t2i_model import UNetConfig, build_unet
    from vsae.world.diffusion.t2i_train import DiffusionTrainConfig, train_diffusion

    with pytest.raises(VsaeError, match="one flag per entry"):
        build_unet(UNetConfig(channels=(16, 32, 32), cross_attention=(False, True)))
    bad = DiffusionTrainConfig(unet=UNetConfig(prediction_type="epsilon"), loss="sample")
    with pytest.raises(VsaeError, match="loss='prediction'"):
        train_diffusion(tmp_path / "x", tmp_path / "no-clip", bad, progress=False)


def test_caption_mix():
    from vsae.world.captions import caption
    from vsae.world.diffusion.t2i_train import DiffusionTrainConfig, batch_captions

    recs = [r.to_dict() for r in generate("train", 3000, seed=0).records]
    caps = batch_captions(recs, np.random.default_rng(0), DiffusionTrainConfig())
    empty = np.mean([c == "" for c in caps])
    canonical = np.mean([c == caption(r) for c, r in zip(caps, recs)])
    assert 0.08 < empty < 0.12 and 0.57 < canonical < 0.64


def test_short_training_is_bitwise_deterministic(tmp_path):
    from safetensors.torch import load_file

    from vsae.world.diffusion.t2i_tiny import build_tiny_world_pipeline

    a = build_tiny_world_pipeline(tmp_path / "a", steps=3)
    b = build_tiny_world_pipeline(tmp_path / "b", steps=3)
    wa = load_file(str(a / "unet" / "diffusion_pytorch_model.safetensors"))
    wb = load_file(str(b / "unet" / "diffusion_pytorch_model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    meta = json.loads((a / "vsae_diffusion.json").read_text())
    assert meta["patch"] == 4 and meta["mask_padding"] and meta["steps_done"] == 3


def test_judge_heads_match_sklearn_and_read_real_images(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from vsae.world.diffusion.judge import fit_judge, load_judge

    j = fit_judge(n=600, seed=0)
    test = generate("test", 300, seed=4)
    pred = j.predict(test.images_NHWC)
    assert np.mean(pred["colour"] == test.labels("colour")) >= 0.95
    assert np.mean(pred["shape"] == test.labels("shape")) >= 0.6
    # the stored linear heads predict exactly what the fitted sklearn model predicts
    train = generate("train", 600, seed=7919)
    emb_tr, emb_te = j.embed(train.images_NHWC), j.embed(test.images_NHWC)
    sc = StandardScaler().fit(emb_tr)
    clf = LogisticRegression(C=1.0, max_iter=2000, random_state=0).fit(
        sc.transform(emb_tr), train.labels("size")
    )
    assert np.array_equal(clf.predict(sc.transform(emb_te)), pred["size"])
    j.save(tmp_path / "j.safetensors")
    again = load_judge(tmp_path / "j.safetensors").predict(test.images_NHWC)
    assert all(np.array_equal(again[a], pred[a]) for a in pred)


def test_shipped_model_generates():
    from vsae.steer.diffusion_pipeline import SamplerConfig, load_pipe
    from vsae.steer.diffusion_pipeline import generate as sample
    from vsae.world.diffusion import shipped_diffusion_dir, shipped_text_sae_dir
    from vsae.world.diffusion.generation_quality import heldout_prompts
    from vsae.world.diffusion.judge import load_judge

    d = shipped_diffusion_dir()
    size = sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
    assert size < 12_000_000, size
    pipe = load_pipe(d)
    assert pipe.vae is None and pipe.patch == 4 and pipe.image_size == 32
    prompts, batch = heldout_prompts(16, seed=1)
    cfg = SamplerConfig(steps=20, guidance=1.5, seed=0)
    ims = sample(pipe, prompts, cfg)
    assert ims.shape == (16, 32, 32, 3) and ims.dtype == np.uint8
    assert np.array_equal(ims, sample(pipe, prompts, cfg))
    pred = load_judge(d / "judge.safetensors").predict(ims, ("colour",))
    assert np.mean(pred["colour"] == batch.labels("colour")) >= 0.75  # chance: 1/8
    assert (shipped_text_sae_dir() / "sae.safetensors").is_file()
    build = json.loads((d / "vsae_world_build.json").read_text())
    q = build["quality"]["generated"]  # the measured numbers docs/diffusion.md states
    assert build["quality"]["n"] == 200 and build["quality"]["sampler"] == {
        "steps": 20,
        "guidance": pipe.guidance,
        "eta": pipe.eta,
        "seed": 0,
    }
    # the measured numbers docs/diffusion.md states: colour meets its 90 % target, the judged
    # shape falls just short of 80 % (its ceiling on real images is 94 %), while the silhouettes
    # (template matching, no model) show the right shape in over 95 % of images
    assert 0.75 <= q["shape"] < 0.8 and q["colour"] >= 0.9, q
    sil = build["quality"]["silhouette"]
    assert sil["generated"]["shape"] >= 0.95 and sil["real"]["shape"] >= 0.97, sil


@pytest.mark.slow
def test_rebuild_is_deterministic_and_accurate(tmp_path):
    """Rebuild the shipped text-to-image assets (about 50 minutes of one core, 10,000 steps):
    the same UNet and text-SAE bits, and held-out generation accuracy as documented."""
    from safetensors.torch import load_file

    from vsae.world.diffusion import shipped_diffusion_dir
    from vsae.world.diffusion.t2i_build import build_diffusion_assets

    res = build_diffusion_assets(tmp_path, threads=1, progress=False)
    q = res["quality"]["generated"]  # shipped build measured: shape 0.79, colour 0.995 (docs/diffusion.md)
    assert q["shape"] >= 0.75 and q["colour"] >= 0.9, q
    assert res["quality"]["silhouette"]["generated"]["shape"] >= 0.95, res["quality"]
    for name in ("unet/diffusion_pytorch_model.safetensors", "text_sae/sae.safetensors"):
        a, b = load_file(str(tmp_path / name)), load_file(str(shipped_diffusion_dir() / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
