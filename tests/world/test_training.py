"""The world models' one training loop (vsae.world.training.fit) against a hand-written loop."""

import json

import pytest
import torch

from vsae.errors import VsaeError
from vsae.train.recipe import TrainRecipe
from vsae.world.training import (
    ParamGroup,
    WorldTrainConfig,
    cosine_lr,
    decay_groups,
    ema_update,
    fit,
)

STEPS, WARMUP, LR = 30, 5, 0.05


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 3))


def _batches(seed: int):
    g = torch.Generator().manual_seed(seed)
    while True:
        x = torch.randn(16, 6, generator=g) * 4
        yield x, x[:, :3].sum(1, keepdim=True) * torch.ones(1, 3)


def _loss(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return (model(x) - y).pow(2).mean()


def test_fit_equals_a_hand_written_loop(tmp_path):
    """The same model, data and recipe trained by `fit` and by the loop it replaces: equal bit for bit."""
    ref = _model()
    lin = list(ref.parameters())
    opt = torch.optim.AdamW(
        [
            {"params": [p for p in lin if p.ndim >= 2], "weight_decay": 0.1},
            {"params": [p for p in lin if p.ndim < 2], "weight_decay": 0.0},
        ],
        lr=LR,
    )
    it = _batches(1)
    ref_losses = []
    for step in range(STEPS):
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, STEPS, WARMUP, LR)
        loss = _loss(ref, next(it))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lin, 1.0)
        opt.step()
        with torch.no_grad():
            ref[0].bias.clamp_(-0.2, 0.2)
        ref_losses.append(loss.item())

    model = _model()
    seen = []

    def after(step: int) -> None:
        seen.append(step)
        with torch.no_grad():
            model[0].bias.clamp_(-0.2, 0.2)

    log = tmp_path / "log.jsonl"
    res = fit(
        decay_groups(model.parameters(), 0.1),
        _batches(1),
        lambda step, batch: _loss(model, batch),
        WorldTrainConfig(TrainRecipe(STEPS, 8, LR, warmup=WARMUP), log_every=10),
        clip=list(model.parameters()),
        after_step=after,
        log_path=log,
        progress=False,
    )
    assert list(res.losses) == ref_losses
    assert ref_losses[-1] < ref_losses[0]  # it learned: the comparison is not between two no-ops
    for (n, p), q in zip(model.named_parameters(), ref.parameters()):
        assert torch.equal(p, q), n
    assert seen == list(range(STEPS))
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in rows] == [10, 20, 30]
    assert rows[-1]["loss"] == pytest.approx(res.mean_loss(10)) == pytest.approx(sum(ref_losses[-10:]) / 10)


def test_lr_scale_and_no_clipping_change_the_result():
    """A group's lr_scale scales its learning rate; grad_clip=0 turns clipping off."""

    def run(scale: float, clip: float) -> torch.nn.Module:
        m = _model()
        fit(
            [ParamGroup(tuple(m[0].parameters()), 0.0, scale), ParamGroup(tuple(m[2].parameters()), 0.0)],
            _batches(2),
            lambda step, batch: _loss(m, batch),
            WorldTrainConfig(TrainRecipe(5, 8, LR), grad_clip=clip),
            progress=False,
        )
        return m

    base, frozen, unclipped = run(1.0, 1.0), run(0.0, 1.0), run(1.0, 0.0)
    start = _model()
    assert torch.equal(frozen[0].weight, start[0].weight)  # lr_scale 0: never moves
    assert not torch.equal(base[0].weight, start[0].weight)
    assert not torch.equal(unclipped[2].weight, base[2].weight)  # the gradient norm exceeded 1: clipped


def test_decay_groups_and_ema():
    m = _model()
    groups = decay_groups(m.parameters(), 0.05, lr_scale=0.5)
    assert [g.weight_decay for g in groups] == [0.05, 0.0] and all(g.lr_scale == 0.5 for g in groups)
    assert {p.ndim for p in groups[0].params} == {2} and {p.ndim for p in groups[1].params} == {1}
    assert decay_groups([torch.nn.Parameter(torch.zeros(3))], 0.1)[0].weight_decay == 0.0  # no empty group
    ema, src = _model(0), _model(1)
    before = ema[0].weight.detach().clone()
    ema_update(ema, src, step=0, decay=0.99)  # warmed up: d = min(0.99, 1/10)
    torch.testing.assert_close(ema[0].weight, before + 0.9 * (src[0].weight - before))


def test_config_refuses_nonsense():
    with pytest.raises(VsaeError, match="steps >= 1"):
        WorldTrainConfig(TrainRecipe(0, 8, 1e-3))
