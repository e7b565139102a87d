"""`--resume` refuses every setting that changes the result, naming it (issue 16)."""

import json

import pytest
import torch

from vsae.errors import VsaeError
from vsae.sae import SAEConfig
from vsae.train import TrainConfig, train
from vsae.train.batch_sources import TensorSource
from vsae.train.resume import check_sae_settings, check_store_identity, check_train_settings


def _cfg(**kw):
    return SAEConfig(**{"arch": "matryoshka", "d_in": 8, "d_sae": 32, "k": 4, "aux_k": 4, "name": "m", **kw})


def _state(t: TrainConfig) -> dict:
    return {"train_cfg": t.to_json()}


def test_train_settings_compare_the_values_used():
    t = TrainConfig(steps=100, batch_size=16)
    check_train_settings(_state(t), t.replace(warmup_steps=t.warmup, device="cuda", log_every=7), "x")
    for kw, flag in (
        ({"grad_clip": 0.5}, "--grad-clip 0.5 but the run used 1.0"),
        ({"warmup_steps": 3}, "--warmup-steps 3 but the run used 5"),
        ({"dead_window_rows": 99}, "--dead-window 99 but the run used 160"),
        ({"lr": 1e-3}, "--lr 0.001 but the run used 0.0004"),
        ({"seed": 2}, "--seed 2"),
    ):
        with pytest.raises(VsaeError, match=flag):
            check_train_settings(_state(t), t.replace(**kw), "x")
    with pytest.raises(VsaeError, match="no valid train_cfg"):
        check_train_settings({"train_cfg": {"steps": "many", "bogus": 1}}, t, "x")


def test_sae_settings_and_store_identity():
    saved = json.loads(json.dumps(_cfg().to_json()))  # groups come back as a list
    check_sae_settings(saved, _cfg(provenance={"store": "/moved"}).to_json(), "m")
    for kw, flag in (({"aux_k": 2}, "--aux-k 2 but the run used 4"), ({"aux_coeff": 0.1}, "--aux-coeff 0.1")):
        with pytest.raises(VsaeError, match=flag):
            check_sae_settings(saved, _cfg(**kw).to_json(), "m")
    with pytest.raises(VsaeError, match="--groups"):
        check_sae_settings(saved, _cfg(groups=(0.5, 0.5)).to_json(), "m")
    check_store_identity({"data": {"store": "abc"}}, "abc")
    check_store_identity({"data": {}}, "abc")  # runs from before the store was recorded
    with pytest.raises(VsaeError, match="another --acts store"):
        check_store_identity({"data": {"store": "abc"}}, "abd")


def test_trainer_refuses_resume_with_other_aux_settings(tmp_path):
    src = TensorSource(torch.randn(256, 8, generator=torch.Generator().manual_seed(0)))
    t = TrainConfig(steps=4, batch_size=32, ckpt_every=2, log_every=2)
    train(src, [_cfg()], t, tmp_path, progress=False)
    with pytest.raises(VsaeError, match="--aux-coeff 0.5 but the run used 0.03"):
        train(src, [_cfg(aux_coeff=0.5)], t, tmp_path, resume=True, progress=False)
    with pytest.raises(VsaeError, match="--grad-clip 0.0 but the run used 1.0"):
        train(src, [_cfg()], t.replace(grad_clip=0.0), tmp_path, resume=True, progress=False)


def test_a_checkpoint_of_the_flat_config_layout_resumes_with_the_same_settings():
    """A run started by older vsae (its checkpoint's cfg carries every architecture's settings,
    tests/sae/fixtures/flat_layout) resumes with the same settings; another k is still refused."""
    import json
    from pathlib import Path

    from vsae.errors import VsaeError
    from vsae.sae.sae_config import SAEConfig
    from vsae.train.resume import check_sae_settings

    flat = Path(__file__).parents[1] / "sae" / "fixtures" / "flat_layout" / "topk" / "config.json"
    saved = json.loads(flat.read_text())["cfg"]
    assert "l1_coeff" in saved  # the old layout
    mine = SAEConfig.from_json(saved).to_json()
    check_sae_settings(saved, mine, "topk")  # no refusal
    with pytest.raises(VsaeError, match="--k"):
        check_sae_settings(saved, {**mine, "k": mine["k"] + 1}, "topk")
