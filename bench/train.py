"""Training throughput and FVU of vsae's BatchTopK trainer vs dictionary_learning and overcomplete.

Run in the separate benchmark venv (peers are never project dependencies):

    bash bench/setup_peers.sh
    bench/.venv/bin/python bench/train.py --device cpu            # CPU reference shape
    bench/.venv/bin/python bench/train.py --device cuda --precision tf32 --check-sync   # GPU

Reference shapes (issue 13): CPU d=512, F=8192, k=32, B=2048; GPU d=1024, F=65,536, k=32,
B=4096 (``--d/--expansion/--k/--batch`` override). All libraries train a BatchTopK SAE of the same
width, k and batch on the same planted batches (a known random dictionary with k-sparse
non-negative codes plus a common offset, as real activations have), with the same peak learning
rate and warm-up, one after another in this process. Every ``--eval-every`` steps each is
evaluated on held-out rows (BatchTopK selection over held-out batches of the training size, for
every library; not timed). Reported: throughput (rows/s over the timed blocks after the first),
FVU after the same number of steps, and steps to reach the fastest peer's final FVU. On CUDA,
``--check-sync`` runs vsae's steps between log intervals under
``torch.cuda.set_sync_debug_mode("error")`` (any host sync raises), and ``--profile`` reports the
GPU-busy fraction of vsae's step from a torch.profiler trace. Where a peer imports at import
time a module that cannot be installed here, that module is replaced by an empty stub, and the
output says which.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
import tempfile
import time
import types

import torch

STUBBED: list[str] = []
PRESETS = {
    "cpu": {"d": 512, "expansion": 16, "k": 32, "batch": 2048},
    "cuda": {"d": 1024, "expansion": 64, "k": 32, "batch": 4096},
}


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


def _sync(dev: str) -> None:
    if dev == "cuda":
        torch.cuda.synchronize()


class Curve:
    """Timed blocks of steps between evaluations, and the held-out FVU after each block."""

    def __init__(self, args):
        self.args, self.times, self.fvus = args, [], []

    def run(self, step_fn, eval_fn, log_fn=None):
        a = self.args
        for s0 in range(0, a.steps, a.eval_every):
            n = min(a.eval_every, a.steps - s0)
            _sync(a.device)
            t0 = time.perf_counter()
            for step in range(s0, s0 + n):
                step_fn(step)
            if log_fn is not None:
                log_fn(s0 + n)  # the trainer's log interval: its one host sync
            _sync(a.device)
            self.times.append((n, time.perf_counter() - t0))
            self.fvus.append((s0 + n, eval_fn()))
        timed = self.times[1:] or self.times
        rate = sum(n for n, _ in timed) * a.batch / sum(t for _, t in timed)
        return {"rows_per_s": rate, "fvu": self.fvus[-1][1], "curve": self.fvus}


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
                yield batches[i % len(batches)].cpu()
                i += 1

    cfg = SAEConfig(arch="batchtopk", d_in=d, d_sae=F, k=args.k, aux_k=d // 2, aux_coeff=1 / 32, name="vsae")
    tc = TrainConfig(
        steps=args.steps,
        batch_size=args.batch,
        lr=args.lr,
        warmup_steps=args.warmup,
        decay_start=1.0,
        log_every=args.eval_every,
        ckpt_every=0,
        val_rows=0,
        init_rows=args.batch,
        b_dec_init="geometric_median",
        device=args.device,
        precision=args.precision,
    )
    with tempfile.TemporaryDirectory() as out:
        tr = Trainer(ListSource(), [cfg], tc, out, progress=False)
        sae = tr.saes["vsae"]

        check = args.device == "cuda" and args.check_sync

        def step(i):
            assert tr.steps_done == i
            if check:  # only the step itself: the log interval and the evaluation read results back
                torch.cuda.set_sync_debug_mode("error")
            try:
                tr.step(batches[i % len(batches)])
            finally:
                if check:
                    torch.cuda.set_sync_debug_mode(0)

        def evaluate():
            thr = sae.threshold.clone()
            with torch.no_grad():
                f = [
                    fvu(p, sae(p).x_hat) for p in (tr.prepare(v) for v in val_batches)
                ]  # FVU is shift/scale-free
            sae.threshold.copy_(thr)
            return sum(f) / len(f)

        res = Curve(args).run(step, evaluate, lambda s: tr.interval_metrics())
        res["sync_free"] = tr.sync_free
        if args.device == "cuda" and args.profile:
            res["gpu_busy"] = gpu_busy(lambda: [step(args.steps + i) for i in range(10)])
    return res


def gpu_busy(fn) -> float:
    """Device kernel time / wall time of ``fn`` (CUDA), from a torch.profiler trace."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        wall = time.perf_counter() - t0
    busy_us = sum(getattr(e, "self_device_time_total", 0) or 0 for e in prof.key_averages())
    return busy_us / 1e6 / wall


def run_dictionary_learning(args, batches, val_batches, d, F):
    mod = _import_peer("dictionary_learning.trainers.batch_top_k", {"nnsight": {"LanguageModel": object}})
    if mod is None:
        return None
    tr = mod.BatchTopKTrainer(
        steps=args.steps,
        activation_dim=d,
        dict_size=F,
        k=args.k,
        layer=0,
        lm_name="bench",
        lr=args.lr,
        warmup_steps=args.warmup,
        seed=0,
        device=args.device,
    )

    def evaluate():
        with torch.no_grad():
            f = [fvu(v, tr.ae.decode(tr.ae.encode(v, use_threshold=False))) for v in val_batches]
        return sum(f) / len(f)

    return Curve(args).run(lambda i: tr.update(i, batches[i % len(batches)]), evaluate)


def run_overcomplete(args, batches, val_batches, d, F):
    mod = _import_peer("overcomplete.sae", {"torchvision.transforms": {}, "timm": {}})
    if mod is None:
        return None
    torch.manual_seed(0)
    model = mod.BatchTopKSAE(d, F, top_k=args.k * args.batch, device=args.device)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / args.warmup))

    def criterion(x, x_hat, pre_codes, codes, dictionary):  # plain MSE: the cheapest overcomplete loss
        return (x - x_hat).square().mean()

    from overcomplete.sae.train import train_sae

    def step(i):
        train_sae(
            model,
            [batches[i % len(batches)]],
            criterion,
            opt,
            sched,
            nb_epochs=1,
            clip_grad=1.0,
            monitoring=0,
            device=args.device,
        )

    def evaluate():
        model.train()  # batch top-k selection on held-out batches, as for the others
        with torch.no_grad():
            f = [fvu(v, model(v)[2]) for v in val_batches]
        return sum(f) / len(f)

    return Curve(args).run(step, evaluate)


def steps_to(curve, target: float) -> int | None:
    return next((s for s, f in curve if f <= target), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--d", type=int)
    ap.add_argument("--expansion", type=int)
    ap.add_argument("--k", type=int)
    ap.add_argument("--batch", type=int)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument(
        "--precision", choices=["fp32", "tf32", "bf16"], default="fp32", help="vsae's matmul precision"
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--sync-free", choices=["auto", "on", "off"], default="auto", help="vsae: auto = on for CUDA"
    )
    ap.add_argument("--libs", default="vsae,dictionary_learning,overcomplete")
    ap.add_argument("--check-sync", action="store_true", help="CUDA: error on any host sync in vsae's steps")
    ap.add_argument("--profile", action="store_true", help="CUDA: GPU-busy fraction of vsae's step")
    args = ap.parse_args()
    for key, v in PRESETS[args.device].items():
        if getattr(args, key) is None:
            setattr(args, key, v)
    torch.set_num_threads(args.threads)
    from vsae.train.planted import make_planted

    d, F = args.d, args.d * args.expansion
    n_train = 8 * args.batch
    data = make_planted(n_train + 2 * args.batch, d, 4 * d, args.k, noise=0.05, seed=0, offset=1.0).x_Nd
    g = torch.Generator().manual_seed(0)
    train_rows = data[:n_train][torch.randperm(n_train, generator=g)]
    batches = [b.to(args.device) for b in train_rows.split(args.batch)]
    val_batches = [b.to(args.device) for b in data[n_train:].split(args.batch)]
    dev_name = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {os.cpu_count()} cores"
    print(
        f"# BatchTopK d={d} F={F} (x{args.expansion}) k={args.k} batch={args.batch} steps={args.steps} "
        f"lr={args.lr} warmup={args.warmup} vsae precision={args.precision} threads={args.threads} "
        f"torch={torch.__version__} device={dev_name} load average {os.getloadavg()[0]:.1f}"
    )
    results = {}
    runners = {
        "vsae": run_vsae,
        "dictionary_learning": run_dictionary_learning,
        "overcomplete": run_overcomplete,
    }
    for name in args.libs.split(","):
        t0 = time.perf_counter()
        r = runners[name](args, batches, val_batches, d, F)
        if r is not None:
            results[name] = r
            print(
                f"#   {name}: done in {time.perf_counter() - t0:.0f}s; held-out FVU by step: "
                + " ".join(f"{s}:{f:.3f}" for s, f in r["curve"]),
                flush=True,
            )
    if STUBBED:
        print(
            f"# stubbed at import (not installable here, unused by the benchmarked code): {', '.join(sorted(set(STUBBED)))}"
        )
    peers = {n: r for n, r in results.items() if n != "vsae"}
    fastest = max(peers, key=lambda n: peers[n]["rows_per_s"]) if peers else None
    target = peers[fastest]["fvu"] if fastest else None
    print(
        f"{'library':<22}{'rows/s':>10}{'FVU@' + str(args.steps):>10}{'steps to ' + (f'{target:.3f}' if target else '-'):>16}"
    )
    for name, r in results.items():
        st = steps_to(r["curve"], target) if target is not None else None
        print(
            f"{name:<22}{r['rows_per_s']:>10.0f}{r['fvu']:>10.4f}{'>' + str(args.steps) if st is None else st:>16}"
        )
    if "vsae" in results:
        v = results["vsae"]
        extra = f"; GPU busy {v['gpu_busy']:.0%} of the step" if "gpu_busy" in v else ""
        sync = (
            "; no host sync between log intervals (set_sync_debug_mode error)"
            if args.device == "cuda" and args.check_sync
            else ""
        )
        print(f"# vsae sync-free step: {v['sync_free']}{sync}{extra}")
        if fastest:
            ratio = v["rows_per_s"] / peers[fastest]["rows_per_s"]
            need = 2.0 if args.device == "cpu" else 8.0
            ok = ratio >= need and v["fvu"] <= peers[fastest]["fvu"] + 1e-9
            print(
                f"speedup vs fastest peer ({fastest}): {ratio:.2f}x; FVU vsae {v['fvu']:.4f} vs "
                f"{peers[fastest]['fvu']:.4f} -> target (>={need:g}x at equal or better FVU) {'MET' if ok else 'NOT MET'}"
            )
    assert all(math.isfinite(r["rows_per_s"]) for r in results.values())


if __name__ == "__main__":
    main()
