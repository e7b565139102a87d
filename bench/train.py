"""Training throughput and FVU of vsae's BatchTopK trainer vs dictionary_learning and overcomplete.

Run in the separate benchmark venv (peers are never project dependencies):

    bash bench/setup_peers.sh
    bench/.venv/bin/python bench/train.py

All three train a BatchTopK SAE of the same width, k and batch on the same planted batches
(activations built from a known random dictionary with k-sparse non-negative codes), with the
same peak learning rate and warm-up, one after another in this process. Reported: steady-state
training throughput (rows/s, first steps excluded), FVU on held-out rows after the fixed number
of steps (BatchTopK selection over held-out batches of the training size, for every library), and
the achieved GFLOP/s of vsae's encoder matmul next to a plain large square matmul timed in the
same run. Where a peer imports at import time a module that cannot be installed here, that
module is replaced by an empty stub, and the output says which.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
import tempfile
import time
import types

import torch

STUBBED: list[str] = []


def _stub(name: str, **attrs) -> None:
    """Register an empty module (and its parents) so a peer's unused imports succeed."""
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        mod_name = ".".join(parts[:i])
        if mod_name not in sys.modules:
            sys.modules[mod_name] = types.ModuleType(mod_name)
    for k, v in attrs.items():
        setattr(sys.modules[name], k, v)
    STUBBED.append(name)


def _import_peer(module: str, stubs: dict[str, dict]) -> types.ModuleType | None:
    for name, attrs in stubs.items():
        try:
            importlib.import_module(name.split(".")[0])
        except ImportError:
            _stub(name, **attrs)
    try:
        return importlib.import_module(module)
    except ImportError as e:
        print(f"# {module} unavailable ({e}); run bash bench/setup_peers.sh and use bench/.venv/bin/python")
        return None


def fvu(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    return float((x_hat - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum())


def steady_rate(step_times: list[float], batch: int, skip: int) -> float:
    ts = sorted(step_times[skip:]) or sorted(step_times)
    return batch / ts[len(ts) // 2]  # median step time


def run_vsae(args, batches, val_batches, d, F):
    from vsae.sae import SAEConfig
    from vsae.train import TrainConfig, Trainer

    class ListSource:
        def __init__(self):
            self.d = d

        def __len__(self):
            return len(batches) * args.batch

        def iter_batches(self, batch_size, *, seed=0, start_batch=0):
            i = start_batch
            while True:
                yield batches[i % len(batches)]
                i += 1

    cfg = SAEConfig(arch="batchtopk", d_in=d, d_sae=F, k=args.k, aux_k=d // 2, aux_coeff=1 / 32, name="vsae")
    tc = TrainConfig(steps=args.steps, batch_size=args.batch, lr=args.lr, warmup_steps=args.warmup, decay_start=1.0,
                     log_every=1, ckpt_every=0, val_rows=0, init_rows=args.batch, b_dec_init="geometric_median")
    with tempfile.TemporaryDirectory() as out:
        tr = Trainer(ListSource(), [cfg], tc, out, progress=False)
        times = []
        run = tr.runs[0]
        it = ListSource().iter_batches(args.batch)
        for step in range(args.steps):
            x = next(it) * tr.scale
            t0 = time.perf_counter()
            tr._train_step(run, x, step)
            times.append(time.perf_counter() - t0)
        sae, scale = run.sae, tr.scale
        sae.train()
        with torch.no_grad():
            f = [fvu(v, sae(v * scale).x_hat / scale) for v in val_batches]
        # encoder GFLOP/s: the dense pre-activation matmul of one training batch
        xb = batches[0] * scale
        for _ in range(2):
            sae._pre_acts_nograd(xb)
        enc = []
        for _ in range(5):
            t0 = time.perf_counter()
            sae._pre_acts_nograd(xb)
            enc.append(time.perf_counter() - t0)
        enc_gflops = 2 * args.batch * d * F / min(enc) / 1e9
    return {"rows_per_s": steady_rate(times, args.batch, 3), "fvu": sum(f) / len(f), "enc_gflops": enc_gflops}


def run_dictionary_learning(args, batches, val_batches, d, F):
    mod = _import_peer("dictionary_learning.trainers.batch_top_k", {"nnsight": {"LanguageModel": object}})
    if mod is None:
        return None
    tr = mod.BatchTopKTrainer(steps=args.steps, activation_dim=d, dict_size=F, k=args.k, layer=0, lm_name="bench",
                              lr=args.lr, warmup_steps=args.warmup, seed=0, device="cpu")
    times = []
    for step in range(args.steps):
        x = batches[step % len(batches)]
        t0 = time.perf_counter()
        tr.update(step, x)
        times.append(time.perf_counter() - t0)
    with torch.no_grad():
        f = [fvu(v, tr.ae.decode(tr.ae.encode(v, use_threshold=False))) for v in val_batches]
    return {"rows_per_s": steady_rate(times, args.batch, 3), "fvu": sum(f) / len(f)}


def run_overcomplete(args, batches, val_batches, d, F):
    mod = _import_peer("overcomplete.sae", {"torchvision.transforms": {}, "timm": {}})
    if mod is None:
        return None
    torch.manual_seed(0)
    model = mod.BatchTopKSAE(d, F, top_k=args.k * args.batch, device="cpu")
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / args.warmup))

    def criterion(x, x_hat, pre_codes, codes, dictionary):  # plain MSE: the cheapest overcomplete loss
        return (x - x_hat).square().mean()

    from overcomplete.sae.train import train_sae

    times = []
    for step in range(args.steps):
        t0 = time.perf_counter()
        train_sae(model, [batches[step % len(batches)]], criterion, opt, sched, nb_epochs=1, clip_grad=1.0,
                  monitoring=0, device="cpu")
        times.append(time.perf_counter() - t0)
    model.train()  # batch top-k selection on held-out batches, as for the others
    with torch.no_grad():
        f = [fvu(v, model(v)[2]) for v in val_batches]
    return {"rows_per_s": steady_rate(times, args.batch, 3), "fvu": sum(f) / len(f)}


def plain_matmul_gflops(n: int = 2048) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    for _ in range(2):
        torch.mm(a, b, out=out)
    ts = []
    for _ in range(5):
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        ts.append(time.perf_counter() - t0)
    return 2 * n**3 / min(ts) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", type=int, default=256)
    ap.add_argument("--expansion", type=int, default=16)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from vsae.train.planted import make_planted

    d, F = args.d, args.d * args.expansion
    n_train = 8 * args.batch
    data = make_planted(n_train + 2 * args.batch, d, 4 * d, args.k, noise=0.05, seed=0, offset=1.0).x_Nd
    g = torch.Generator().manual_seed(0)
    train_rows = data[:n_train][torch.randperm(n_train, generator=g)]
    batches = list(train_rows.split(args.batch))
    val_batches = list(data[n_train:].split(args.batch))
    print(f"# BatchTopK d={d} F={F} (x{args.expansion}) k={args.k} batch={args.batch} steps={args.steps} "
          f"lr={args.lr} warmup={args.warmup} threads={args.threads} torch={torch.__version__}")
    results = {}
    for name, fn in (("vsae", run_vsae), ("dictionary_learning", run_dictionary_learning),
                     ("overcomplete", run_overcomplete)):
        t0 = time.perf_counter()
        r = fn(args, batches, val_batches, d, F)
        if r is not None:
            results[name] = r
            print(f"#   {name}: done in {time.perf_counter() - t0:.0f}s", flush=True)
    mm = plain_matmul_gflops()
    if STUBBED:
        print(f"# stubbed at import (not installable here, unused by the benchmarked code): {', '.join(sorted(set(STUBBED)))}")
    print(f"{'library':<22}{'rows/s':>10}{'FVU':>9}")
    for name, r in results.items():
        print(f"{name:<22}{r['rows_per_s']:>10.0f}{r['fvu']:>9.4f}")
    peers = {n: r for n, r in results.items() if n != "vsae"}
    if peers and "vsae" in results:
        best = max(peers, key=lambda n: peers[n]["rows_per_s"])
        ratio = results["vsae"]["rows_per_s"] / peers[best]["rows_per_s"]
        ok = ratio >= 1.5 and results["vsae"]["fvu"] <= peers[best]["fvu"] + 1e-9
        print(f"speedup vs fastest peer ({best}): {ratio:.2f}x; FVU vsae {results['vsae']['fvu']:.4f} vs "
              f"{peers[best]['fvu']:.4f} -> target (>=1.5x at equal or better FVU) {'MET' if ok else 'NOT MET'}")
    if "vsae" in results:
        e = results["vsae"]["enc_gflops"]
        print(f"encoder matmul {e:.1f} GFLOP/s vs plain {2048}^3 matmul {mm:.1f} GFLOP/s ({e / mm:.0%})")
    assert math.isfinite(mm)


if __name__ == "__main__":
    main()
