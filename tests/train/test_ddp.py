"""Two gloo processes (DistributedDataParallel) train the same SAEs as one process on the same
global batches, within float tolerance."""

import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vsae.sae import SAEConfig, load
from vsae.train import TensorSource, TrainConfig, train
from vsae.train.planted import make_planted

CFGS = [
    SAEConfig(arch="relu", d_in=16, d_sae=48, l1_coeff=0.3, name="relu"),
    SAEConfig(arch="topk", d_in=16, d_sae=48, k=3, aux_k=8, name="topk"),
    SAEConfig(arch="batchtopk", d_in=16, d_sae=48, k=3, aux_k=8, name="batchtopk"),
]
TCFG = TrainConfig(
    steps=40, batch_size=128, lr=3e-3, log_every=10, ckpt_every=20, val_rows=0, dead_window_rows=640
)


def _data():
    return make_planted(3000, 16, 32, 3, seed=4, offset=0.5).x_Nd


def _worker(rank, world, port, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        train(TensorSource(_data()), CFGS, TCFG, out, progress=False)
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_equals_single_process(tmp_path):
    single = train(TensorSource(_data()), CFGS, TCFG, tmp_path / "single", progress=False)
    mp.start_processes(
        _worker, args=(2, _free_port(), str(tmp_path / "ddp")), nprocs=2, join=True, start_method="fork"
    )
    for c, d in zip(CFGS, single):
        a, b = load(d), load(tmp_path / "ddp" / c.name)
        for (n, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
            torch.testing.assert_close(q, p, atol=2e-4, rtol=1e-3, msg=f"{c.name}.{n}")
    assert (tmp_path / "ddp" / "train_state.json").exists()
