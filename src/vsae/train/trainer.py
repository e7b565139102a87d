"""The training loop: several SAEs trained in one pass over the same streamed batches.

Per step and SAE: forward (sparse for the top-k family), loss (+ aux-k on dead latents,
+ warmed-up sparsity penalty), backward, remove the decoder-gradient component parallel to
each unit-norm decoder row, clip the gradient norm, Adam step with warm-up/decay LR, and
renormalise the decoder. Inputs are centred on the decoder-bias initialisation (geometric
median) and scaled so that E||x||^2 = d; centre and scale are folded into the weights saved at
the end (:func:`vsae.train.fold.fold_input`). Centring is what keeps lr = 1e-3 stable: on
un-centred inputs every Adam step on W_enc shifts all pre-activations by about lr * ||x||_1
and latents die en masse (issue 13). Checkpoints hold everything needed to continue bit-identically.
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
from vsae.sae.io import build, save
from vsae.sae.sae_config import SAEConfig
from vsae.sae.step import fixed_shapes, global_batch
from vsae.sae.sweep import run_name
from vsae.store.prefetch import prefetch_batches
from vsae.store.safe_io import append_line, output_lock
from vsae.train import checkpoint as ck
from vsae.train import dist as D
from vsae.train import guards
from vsae.train import resume as resume_rules
from vsae.train.batch_sources import provenance_of, sample_rows, spread_rows
from vsae.train.fold import fold_input
from vsae.train.init import decoder_bias, input_scale
from vsae.train.precision import precision_context
from vsae.train.train_config import TrainConfig
from vsae.train.validation import recon_metrics


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
    # max(since_fired_F) read on the host at step `since_step` (at start and each log): until
    # it can reach the dead window no latent is dead, so the step needs no dead mask (no sync).
    since_max: int = 0
    since_step: int = 0


def _weights(run: _Run) -> dict[str, torch.Tensor]:
    return {**{f"sae.{k}": v for k, v in run.sae.state_dict().items()}, "since_fired_F": run.since_fired_F}


class Trainer:
    """Trains ``cfgs`` (one SAE each, same d_in) on ``source`` into ``out_dir/<cfg.name>/``.

    ``run()`` trains to ``tcfg.steps`` (resuming from the last checkpoint when ``resume``) and
    saves. Its parts are public for tests and benchmarks that drive the loop themselves:
    ``step(x)`` is one optimizer step of every SAE on a batch, ``interval_metrics()`` the log
    rows of the steps since the last call, ``checkpoint()`` a resumable checkpoint and
    ``saes`` the SAEs being trained (in the training space, see `prepare`).
    """

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
        if val is not None and getattr(val, "d", source.d) != source.d:  # before training, not after
            raise VsaeError(
                f"--val has width d={val.d} but --acts has d={source.d}; use a store of the same hook "
                "(validation and training rows of one width)"
            )
        if len(source) < tcfg.batch_size:  # before anything is written: a corrected rerun starts clean
            raise VsaeError(
                f"the store has {len(source)} rows, fewer than one batch of {tcfg.batch_size}; "
                "lower --batch-size"
            )
        self.source, self.val, self.tcfg = source, val, tcfg
        self.out = Path(out_dir)
        self.progress = progress and self.rank == 0
        self.device = torch.device(tcfg.device)
        self.sync_free = tcfg.sync_free if tcfg.sync_free is not None else self.device.type == "cuda"
        prov = provenance_of(source)
        self.cfgs = [c.replace(provenance=prov) for c in cfgs]
        self.names = names
        state = ck.read_run_state(self.out)
        if state is not None and not resume:
            raise VsaeError(
                f"{self.out} already holds a training run; pass --resume to continue it or a new --out"
            )
        self.steps_done = 0  # optimizer steps taken: the index of the next step
        self.scale = 1.0
        self.center: torch.Tensor | None = None  # [d] input centre in raw units (None: 0)
        if state is not None:
            self._check_compatible(state)
            self.steps_done = int(state["step"])
            self.scale = float(state["scale"])
            if state.get("center") is not None:  # runs before issue 13 were not centred
                self.center = torch.tensor(state["center"], dtype=torch.float32)
            stream = (state.get("data") or {}).get("stream")
            if stream is not None and hasattr(source, "restore"):  # a model stream: where its refill began
                source.restore(stream, tcfg.seed)
        elif tcfg.normalize or tcfg.b_dec_init != "zeros":
            sample = sample_rows(source, tcfg.init_rows, tcfg.seed)
            self.scale = input_scale(sample) if tcfg.normalize else 1.0
            if tcfg.b_dec_init != "zeros":
                self.center = decoder_bias(sample, tcfg.b_dec_init).float()
        self._center_dev = None if self.center is None else self.center.to(self.device)
        self.runs = [self._make_run(c) for c in self.cfgs]
        if state is not None:
            for r in self.runs:
                self._load(r, self.steps_done)
        for r in self.runs:
            r.since_max, r.since_step = int(r.since_fired_F.max()), self.steps_done

    @property
    def saes(self) -> dict[str, SAE]:
        """The SAEs being trained, by name: in the training space (inputs through `prepare`),
        not folded back to the input scale as the saved ones are."""
        return {r.name: r.sae for r in self.runs}

    # ----- set-up ------------------------------------------------------------------------
    def _check_compatible(self, state: dict[str, Any]) -> None:
        if state.get("names") != self.names:
            raise VsaeError(
                f"{self.out} holds SAEs {state.get('names')}, not {self.names}; use the same --arch/--k/--expansion to resume"
            )
        resume_rules.check_train_settings(state, self.tcfg, str(self.out / ck.STATE))
        resume_rules.check_store_identity(state, getattr(self.source, "fingerprint", None))

    def _make_run(self, cfg: SAEConfig) -> _Run:
        # Zero biases: the inputs are already centred on the decoder-bias init (see `prepare`).
        sae = build(cfg, seed=self.tcfg.seed)
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
        # Fused Adam keeps its step counter on the device: no host read per step.
        fused = {"fused": True} if self.sync_free else {}
        opt = torch.optim.Adam(sae.parameters(), lr=self.tcfg.lr, betas=(0.9, 0.999), **fused)
        since = torch.zeros(cfg.d_sae, dtype=torch.long, device=self.device)
        return _Run(cfg.name, sae, model, opt, since)

    def _load(self, run: _Run, step: int) -> None:
        weights, opt_t, st = ck.load_sae_checkpoint(ck.ckpt_dir(self.out, run.name, step))
        resume_rules.check_sae_settings(st.get("cfg"), run.sae.cfg.to_json(), run.name)
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
    def step(self, x_Bd: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
        """One optimizer step of every SAE on the rows ``x_Bd`` as the source gives them (this
        process's part of the global batch under DDP): the step's losses by SAE name, as
        detached device tensors (reading them is the caller's host sync, not the step's)."""
        x = self.prepare(x_Bd)
        losses = {r.name: self._train_step(r, x, self.steps_done) for r in self.runs}
        self.steps_done += 1
        return losses

    def _train_step(self, run: _Run, x: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        t = self.tcfg
        maybe_dead = run.since_max + (step - run.since_step) * t.batch_size >= t.dead_window
        dead = run.since_fired_F >= t.dead_window if maybe_dead else None
        run.opt.zero_grad(set_to_none=True)
        ranks = global_batch(D.all_reduce_ if D.world() > 1 else None)  # the aux-k variance's sums
        with precision_context(t.precision, self.device), fixed_shapes(self.sync_free), ranks:
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
            if "capped" in out.extra:
                stats["capped"] = out.extra["capped"]
        run.acc.add({**stats, **{f"loss/{k}": v for k, v in out.losses.items()}})
        return {k: v.detach() for k, v in out.losses.items()}

    def interval_metrics(self, rows_per_s: float = 0.0) -> dict[str, dict[str, Any]]:
        """Each SAE's log row (fvu, mse, l0, dead_frac, mean losses ...) over the steps since the
        last call, by name, and a new interval begins: the one host read of the interval."""
        return {r.name: self._log(r, self.steps_done, rows_per_s) for r in self.runs}

    def _log(self, run: _Run, step: int, rows_per_s: float) -> dict[str, Any]:
        a = run.acc
        v = torch.tensor(
            [a.get("err"), a.get("var"), a.get("nnz"), float(a.n)], dtype=torch.float64, device=self.device
        )
        D.all_reduce_(v)
        err, var, nnz, n = (float(t) for t in v)
        rows_seen = n * self.tcfg.batch_size / self.world  # n sums the steps of every rank
        row = {
            "step": step,
            "rows": step * self.tcfg.batch_size,
            "lr": self.tcfg.lr_at(step - 1),
            "fvu": err / var if var > 0 else float("nan"),
            # METRICS.md: mean over rows of ||x - x_hat||^2 / d, in the input's scale (as vsae.eval.recon)
            "mse": err / (rows_seen * self.source.d) / self.scale**2 if rows_seen else float("nan"),
            "l0": nnz / rows_seen if rows_seen else float("nan"),
            "dead_frac": float((run.since_fired_F >= self.tcfg.dead_window).float().mean()),
            "rows_per_s": rows_per_s,
        }
        row.update({k: float(s) / max(a.n, 1) for k, s in a.sums.items() if k.startswith("loss/")})
        if "capped" in a.sums:  # sync-free selection: steps where a row may have been capped
            row["capped_steps"] = int(a.get("capped"))
        run.since_max, run.since_step = int(run.since_fired_F.max()), step
        run.acc = _Acc()
        return row

    def _write_log(self, name: str, row: dict[str, Any]) -> None:
        if self.rank != 0:
            return
        append_line(self.out / name / "log.jsonl", json.dumps(row))

    def checkpoint(self) -> None:
        """Write a checkpoint at the current step from which ``Trainer(..., resume=True).run()``
        continues bit-identically (weights, Adam state, dead-latent counters, RNG state)."""
        step = self.steps_done
        for r in self.runs:
            guards.check_weights(r.name, r.sae.parameters(), step)
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
                    "center": self._center_json(),
                    "names": self.names,
                    "train_cfg": self.tcfg.to_json(),
                    "data": {
                        "seed": self.tcfg.seed,
                        "batch_size": self.tcfg.batch_size,
                        "next_batch": step,
                        "store": getattr(self.source, "fingerprint", None),
                        # a model stream (vsae.train.stream): the start of the refill serving this step
                        "stream": self.source.state_at(step, self.tcfg.seed)
                        if hasattr(self.source, "state_at")
                        else None,
                    },
                },
                self.names,
            )
        D.barrier()

    def _validate(self, run: _Run) -> dict[str, float]:
        if self.val is None or self.tcfg.val_rows <= 0:
            return {}
        sae = fold_input(run.sae, self.scale, self.center)
        rows = spread_rows(self.val, self.tcfg.val_rows, self.tcfg.seed)  # seeded, spans the store
        return recon_metrics(sae, rows, str(self.device))

    def _finish(self) -> list[Path]:
        dirs = []
        for r in self.runs:
            d = self.out / r.name
            val = self._validate(r)
            if val:
                self._write_log(r.name, {"step": self.steps_done, "val": val})
            if self.rank == 0:
                save(
                    fold_input(r.sae, self.scale, self.center).eval(),
                    d,
                    extra={
                        "train_cfg": self.tcfg.to_json(),
                        "input_scale": self.scale,
                        "val": val,
                        "steps": self.steps_done,
                    },
                )
            dirs.append(d)
        D.barrier()
        return dirs

    def run(self) -> list[Path]:
        """Train to ``tcfg.steps`` (continuing from a checkpoint if resuming); the SAE directories.
        Rank 0 holds the output lock on ``out`` throughout: a second run into it is refused."""
        if self.rank != 0:
            return self._run()
        with output_lock(self.out):
            return self._run()

    def _run(self) -> list[Path]:
        t = self.tcfg
        if self.rank == 0:
            for n in self.names:
                (self.out / n).mkdir(parents=True, exist_ok=True)
        if self.steps_done >= t.steps:
            return self._finish()
        if self.steps_done == 0:
            self.checkpoint()
        lo = self.rank * t.batch_size // self.world
        hi = lo + t.batch_size // self.world
        batches = prefetch_batches(
            self.source,
            t.batch_size,
            seed=t.seed,
            start_batch=self.steps_done,
            device=self.device,
            rows=(lo, hi) if self.world > 1 else None,
            to_float=self.device.type != "cuda",
        )
        bar = tqdm(
            total=t.steps,
            initial=self.steps_done,
            disable=not self.progress,
            unit="step",
            dynamic_ncols=True,
            desc=self._bar_desc(),
        )
        t0, rows0, waited = time.perf_counter(), 0, 0.0
        last_log = self.steps_done
        try:
            while self.steps_done < t.steps:
                tw = time.perf_counter()
                x = next(batches)
                waited += time.perf_counter() - tw  # the step waiting for data (0 when the reader keeps up)
                self.step(x)
                rows0 += t.batch_size
                bar.update(1)
                if self.steps_done % t.log_every == 0 or self.steps_done == t.steps:
                    elapsed = max(time.perf_counter() - t0, 1e-9)
                    rows = self.interval_metrics(rows0 / elapsed)
                    for row in rows.values():
                        row["data_wait_frac"] = waited / elapsed
                    self._record(rows, last_log + 1, bar)
                    last_log = self.steps_done
                    t0, rows0, waited = time.perf_counter(), 0, 0.0
                if t.ckpt_every and self.steps_done % t.ckpt_every == 0 and self.steps_done < t.steps:
                    self.checkpoint()
                    for r in self.runs:
                        val = self._validate(r)
                        if val:
                            self._write_log(r.name, {"step": self.steps_done, "val": val})
        finally:
            bar.close()
            batches.close()
        self.checkpoint()
        return self._finish()

    def _record(self, rows: dict[str, dict[str, Any]], first_step: int, bar: tqdm) -> None:
        """Write the log rows (JSONL, W&B), stop on non-finite values, update the progress bar."""
        for name, row in rows.items():
            self._write_log(name, row)
            self._wandb(name, row)
        for name, row in rows.items():
            guards.check_log_row(name, row, first_step)
        if len(rows) == 1:
            [row] = rows.values()
            bar.set_postfix(fvu=f"{row['fvu']:.3f}", l0=f"{row['l0']:.1f}", dead=f"{row['dead_frac']:.2f}")
        else:  # a sweep: every SAE's metrics, by name
            bar.set_postfix_str(
                "; ".join(
                    f"{name} fvu {row['fvu']:.3f} l0 {row['l0']:.1f} dead {row['dead_frac']:.2f}"
                    for name, row in rows.items()
                )
            )

    def _bar_desc(self) -> str:
        """What the bar shows: the hook (when the source records one) and the SAE or sweep size."""
        prov = getattr(self.source, "provenance", None) or {}
        hook = prov.get("hook") if isinstance(prov, dict) else None
        what = self.names[0] if len(self.names) == 1 else f"{len(self.names)} SAEs"
        return f"train {hook}: {what}" if hook else f"train {what}"

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Rows as the source gives them -> the training space: (x - center) * scale, fp32, on device."""
        x = x.to(self.device, non_blocking=True).float()
        if self._center_dev is not None:
            x = x - self._center_dev
        return x * self.scale if self.scale != 1.0 else x

    def _center_json(self) -> list[float] | None:
        return None if self.center is None else self.center.tolist()

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


def as_source(x: Any) -> Any:
    """A batch source for `train`: a store path, a tensor or numpy array of rows [N, d], or a source."""
    import numpy as np

    from vsae.train.batch_sources import TensorSource, open_store_source

    if isinstance(x, str | os.PathLike):
        return open_store_source(x)
    if isinstance(x, np.ndarray):
        return TensorSource(torch.from_numpy(np.ascontiguousarray(x)))
    if torch.is_tensor(x):
        return TensorSource(x.detach().cpu())
    return x


def train(
    source: Any,
    cfgs: SAEConfig | list[SAEConfig],
    tcfg: TrainConfig,
    out_dir: str | os.PathLike,
    val: Any = None,
    resume: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Train SAEs on `source` (an ActivationStore, a store path, or rows [N, d] as a tensor or numpy
    array; `val` likewise); returns the directories of the saved (input-scale) SAEs. SAEs of a sweep
    left with the default name "sae" are named by `run_name` (e.g. ``topk-x4-k8``)."""
    cfgs = [cfgs] if isinstance(cfgs, SAEConfig) else list(cfgs)
    if len(cfgs) > 1 and len({c.name for c in cfgs}) < len(cfgs):  # a sweep left with default names
        import dataclasses

        cfgs = [dataclasses.replace(c, name=run_name(c)) if c.name == "sae" else c for c in cfgs]
    val = None if val is None else as_source(val)
    return Trainer(as_source(source), cfgs, tcfg, out_dir, val=val, resume=resume, progress=progress).run()
