"""The training loop: several SAEs trained in one pass over the same streamed batches.

Per step and SAE: forward (sparse for the top-k family), loss (+ aux-k on dead latents,
+ warmed-up sparsity penalty), backward, remove the decoder-gradient component parallel to
each unit-norm decoder row, clip the gradient norm, Adam step with warm-up/decay LR, and
renormalise the decoder. Inputs are scaled to E||x||^2 = d; the scale is folded into the
weights saved at the end. Checkpoints hold everything needed to continue bit-identically.
Under torchrun every SAE is wrapped in DistributedDataParallel and each rank trains on its
slice of the same global batch.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from vsae.errors import VsaeError
from vsae.sae.base import SAE
from vsae.sae.config import SAEConfig
from vsae.sae.io import build, fold_scale, save
from vsae.train import checkpoint as ck
from vsae.train import dist as D
from vsae.train.config import TrainConfig
from vsae.train.data import first_rows, prefetch, provenance_of, sample_rows
from vsae.train.evaluate import recon_metrics
from vsae.train.init import decoder_bias, input_scale


@dataclass
class _Acc:
    """Sums over a logging interval, kept as device tensors (no GPU sync per step)."""

    n: int = 0
    sums: dict[str, torch.Tensor] = field(default_factory=dict)

    def add(self, values: dict[str, torch.Tensor]) -> None:
        self.n += 1
        for k, v in values.items():
            v = v.detach().double()
            self.sums[k] = self.sums[k] + v if k in self.sums else v

    def get(self, key: str) -> float:
        return float(self.sums[key]) if key in self.sums else 0.0


@dataclass
class _Run:
    """One SAE of the sweep with its optimizer and dead-latent counters."""

    name: str
    sae: SAE
    model: nn.Module  # the SAE, or its DDP wrapper
    opt: torch.optim.Optimizer
    since_fired_F: torch.Tensor  # rows since each latent last fired (int64)
    acc: _Acc = field(default_factory=_Acc)


def run_name(cfg: SAEConfig, expansion: float | None = None) -> str:
    """Directory name of one SAE in a sweep, e.g. ``batchtopk-x16-k20``."""
    e = expansion if expansion is not None else cfg.d_sae / cfg.d_in
    e_s = f"{e:g}"
    return f"{cfg.arch}-x{e_s}" + (f"-k{cfg.k}" if cfg.arch in ("topk", "batchtopk", "matryoshka") else "")


def _weights(run: _Run) -> dict[str, torch.Tensor]:
    return {**{f"sae.{k}": v for k, v in run.sae.state_dict().items()}, "since_fired_F": run.since_fired_F}


class Trainer:
    """Trains ``cfgs`` (one SAE each, same d_in) on ``source`` into ``out_dir/<cfg.name>/``."""

    def __init__(
        self,
        source: Any,
        cfgs: list[SAEConfig],
        tcfg: TrainConfig,
        out_dir: str | os.PathLike,
        val: Any = None,
        resume: bool = False,
        progress: bool = True,
    ):
        if not cfgs:
            raise VsaeError("nothing to train: give at least one SAE configuration")
        names = [c.name for c in cfgs]
        if len(set(names)) != len(names):
            raise VsaeError(f"SAE names {names} are not unique; vary --k/--expansion or the names")
        for c in cfgs:
            if c.d_in != source.d:
                raise VsaeError(f"SAE {c.name} expects d_in={c.d_in} but the store has d={source.d}")
        self.world, self.rank = D.world(), D.rank()
        if tcfg.batch_size % self.world:
            raise VsaeError(f"--batch-size {tcfg.batch_size} must be divisible by the {self.world} processes")
        self.source, self.val, self.tcfg = source, val, tcfg
        self.out = Path(out_dir)
        self.progress = progress and self.rank == 0
        self.device = torch.device(tcfg.device)
        prov = provenance_of(source)
        self.cfgs = [c.replace(provenance=prov) for c in cfgs]
        self.names = names
        state = ck.read_run_state(self.out)
        if state is not None and not resume:
            raise VsaeError(
                f"{self.out} already holds a training run; pass --resume to continue it or a new --out"
            )
        self.step = 0
        self.scale = 1.0
        if state is not None:
            self._check_compatible(state)
            self.step = int(state["step"])
            self.scale = float(state["scale"])
        elif tcfg.normalize or tcfg.b_dec_init != "zeros":
            sample = sample_rows(source, tcfg.init_rows, tcfg.seed)
            self.scale = input_scale(sample) if tcfg.normalize else 1.0
            self._b_dec = decoder_bias(sample * self.scale, tcfg.b_dec_init)
        self.runs = [self._make_run(c) for c in self.cfgs]
        if state is not None:
            for r in self.runs:
                self._load(r, self.step)

    # ----- set-up ------------------------------------------------------------------------
    def _check_compatible(self, state: dict[str, Any]) -> None:
        if state.get("names") != self.names:
            raise VsaeError(
                f"{self.out} holds SAEs {state.get('names')}, not {self.names}; use the same --arch/--k/--expansion to resume"
            )
        saved = TrainConfig.from_json(state["train_cfg"])
        mine = self.tcfg
        for key in ("steps", "batch_size", "lr", "seed", "normalize", "decay_start"):
            if getattr(saved, key) != getattr(mine, key):
                raise VsaeError(
                    f"--resume with {key}={getattr(mine, key)} but the run used {getattr(saved, key)}; use the same value"
                )

    def _make_run(self, cfg: SAEConfig) -> _Run:
        sae = build(cfg, seed=self.tcfg.seed)
        if hasattr(self, "_b_dec"):
            with torch.no_grad():
                sae.b_dec_d.copy_(self._b_dec)
                # Encode x - b_dec at init (Bricken et al. subtract the decoder bias before the
                # encoder); folded into b_enc so the parametrisation stays x @ W_enc.T + b_enc.
                sae.b_enc_F.copy_(-(sae.W_enc_Fd @ self._b_dec))
        sae = sae.to(self.device).train()
        model: nn.Module = sae
        if D.is_dist():
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            # Buffers (the BatchTopK threshold) are identical on every rank at init and kept in
            # step by explicit reductions, so no per-forward buffer broadcast.
            try:
                model = DDP(sae, device_ids=ids, forward_sync_buffers=False)
            except TypeError:  # torch without forward_sync_buffers
                model = DDP(sae, device_ids=ids, broadcast_buffers=False)
        opt = torch.optim.Adam(sae.parameters(), lr=self.tcfg.lr, betas=(0.9, 0.999))
        since = torch.zeros(cfg.d_sae, dtype=torch.long, device=self.device)
        return _Run(cfg.name, sae, model, opt, since)

    def _load(self, run: _Run, step: int) -> None:
        weights, opt_t, st = ck.load_sae_checkpoint(ck.ckpt_dir(self.out, run.name, step))
        sd = {k[4:]: v for k, v in weights.items() if k.startswith("sae.")}
        run.sae.load_state_dict(sd)
        run.since_fired_F.copy_(weights["since_fired_F"])
        ck.optimizer_from_files(
            run.opt,
            {k: v.to(self.device) if k.startswith("state.") and v.ndim else v for k, v in opt_t.items()},
            st["optimizer"],
        )
        ck.restore_rng(opt_t)

    # ----- the loop ------------------------------------------------------------------------
    def _train_step(self, run: _Run, x: torch.Tensor, step: int) -> None:
        t = self.tcfg
        dead = run.since_fired_F >= t.dead_window
        run.opt.zero_grad(set_to_none=True)
        out = run.model(x, dead_F=dead, sparsity_scale=t.sparsity_at(step))
        out.losses["loss"].backward()
        run.sae.remove_parallel_decoder_grad()
        if t.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(run.sae.parameters(), t.grad_clip)
        for g in run.opt.param_groups:
            g["lr"] = t.lr_at(step)
        run.opt.step()
        run.sae.normalize_decoder()
        fired = out.fired_F().to(torch.int32)
        if D.is_dist():
            D.all_reduce_(fired, op=torch.distributed.ReduceOp.MAX)
        run.since_fired_F.add_(t.batch_size).masked_fill_(fired.bool(), 0)
        with torch.no_grad():
            stats = {
                "err": (out.x_hat - x).pow(2).sum(),
                "var": (x - x.mean(0)).pow(2).sum(),
                "nnz": (out.codes.val_N != 0).sum() if out.codes is not None else (out.z_dense != 0).sum(),
            }
        run.acc.add({**stats, **{f"loss/{k}": v for k, v in out.losses.items()}})

    def _log(self, run: _Run, step: int, rows_per_s: float) -> dict[str, Any]:
        a = run.acc
        v = torch.tensor([a.get("err"), a.get("var"), a.get("nnz"), float(a.n)], dtype=torch.float64, device=self.device)
        D.all_reduce_(v)
        err, var, nnz, n = (float(t) for t in v)
        rows_seen = n * self.tcfg.batch_size / self.world  # n sums the steps of every rank
        row = {
            "step": step,
            "rows": step * self.tcfg.batch_size,
            "lr": self.tcfg.lr_at(step - 1),
            "fvu": err / var if var > 0 else float("nan"),
            "mse": err / rows_seen / self.scale**2 if rows_seen else float("nan"),
            "l0": nnz / rows_seen if rows_seen else float("nan"),
            "dead_frac": float((run.since_fired_F >= self.tcfg.dead_window).float().mean()),
            "rows_per_s": rows_per_s,
        }
        row.update({k: float(s) / max(a.n, 1) for k, s in a.sums.items() if k.startswith("loss/")})
        run.acc = _Acc()
        return row

    def _write_log(self, run: _Run, row: dict[str, Any]) -> None:
        if self.rank != 0:
            return
        with open(self.out / run.name / "log.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")

    def _checkpoint(self, step: int) -> None:
        if self.rank == 0:
            for r in self.runs:
                ck.save_sae_checkpoint(
                    ck.ckpt_dir(self.out, r.name, step),
                    _weights(r),
                    r.opt,
                    {"step": step, "cfg": r.sae.cfg.to_json(), "scale": self.scale},
                )
            ck.commit_run_state(
                self.out,
                {
                    "step": step,
                    "scale": self.scale,
                    "names": self.names,
                    "train_cfg": self.tcfg.to_json(),
                    "data": {"seed": self.tcfg.seed, "batch_size": self.tcfg.batch_size, "next_batch": step},
                },
                self.names,
            )
        D.barrier()

    def _validate(self, run: _Run) -> dict[str, float]:
        if self.val is None or self.tcfg.val_rows <= 0:
            return {}
        sae = fold_scale(run.sae, self.scale)
        return recon_metrics(sae, first_rows(self.val, self.tcfg.val_rows), str(self.device))

    def _finish(self) -> list[Path]:
        dirs = []
        for r in self.runs:
            d = self.out / r.name
            val = self._validate(r)
            if val:
                self._write_log(r, {"step": self.step, "val": val})
            if self.rank == 0:
                save(
                    fold_scale(r.sae, self.scale).eval(),
                    d,
                    extra={
                        "train_cfg": self.tcfg.to_json(),
                        "input_scale": self.scale,
                        "val": val,
                        "steps": self.step,
                    },
                )
            dirs.append(d)
        D.barrier()
        return dirs

    def run(self) -> list[Path]:
        """Train to ``tcfg.steps`` (continuing from a checkpoint if resuming); the SAE directories."""
        t = self.tcfg
        if self.rank == 0:
            for n in self.names:
                (self.out / n).mkdir(parents=True, exist_ok=True)
        if self.step >= t.steps:
            return self._finish()
        if self.step == 0:
            self._checkpoint(0)
        lo = self.rank * t.batch_size // self.world
        hi = lo + t.batch_size // self.world
        batches = prefetch(self.source.iter_batches(t.batch_size, seed=t.seed, start_batch=self.step))
        bar = tqdm(
            total=t.steps, initial=self.step, disable=not self.progress, unit="step", dynamic_ncols=True
        )
        t0, rows0 = time.perf_counter(), 0
        try:
            for step in range(self.step, t.steps):
                x = next(batches)[lo:hi].to(self.device, non_blocking=True).float()
                if self.scale != 1.0:
                    x = x * self.scale
                for r in self.runs:
                    self._train_step(r, x, step)
                self.step = step + 1
                rows0 += t.batch_size
                bar.update(1)
                if self.step % t.log_every == 0 or self.step == t.steps:
                    rate = rows0 / max(time.perf_counter() - t0, 1e-9)
                    rows = [self._log(r, self.step, rate) for r in self.runs]
                    for r, row in zip(self.runs, rows):
                        self._write_log(r, row)
                        self._wandb(r.name, row)
                    bar.set_postfix(
                        fvu=f"{rows[0]['fvu']:.3f}",
                        l0=f"{rows[0]['l0']:.1f}",
                        dead=f"{rows[0]['dead_frac']:.2f}",
                    )
                    t0, rows0 = time.perf_counter(), 0
                if t.ckpt_every and self.step % t.ckpt_every == 0 and self.step < t.steps:
                    self._checkpoint(self.step)
                    for r in self.runs:
                        val = self._validate(r)
                        if val:
                            self._write_log(r, {"step": self.step, "val": val})
        finally:
            bar.close()
            batches.close()
        self._checkpoint(self.step)
        return self._finish()

    def _wandb(self, name: str, row: dict[str, Any]) -> None:
        if not self.tcfg.wandb_project or self.rank != 0:
            return
        try:
            import wandb
        except ImportError:
            return
        if wandb.run is None:
            wandb.init(project=self.tcfg.wandb_project, config=self.tcfg.to_json())
        wandb.log({f"{name}/{k}": v for k, v in row.items() if isinstance(v, int | float)}, step=row["step"])


def train(
    source: Any,
    cfgs: list[SAEConfig],
    tcfg: TrainConfig,
    out_dir: str | os.PathLike,
    val: Any = None,
    resume: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Train SAEs on a batch source; returns the directories of the saved (input-scale) SAEs."""
    return Trainer(source, cfgs, tcfg, out_dir, val=val, resume=resume, progress=progress).run()
