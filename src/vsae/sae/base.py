"""The shared SAE base: parameters, encode/decode, unit-norm decoder, sparse codes, aux-k loss.

Parameters (both weight matrices are stored latent-major so that one latent is one
contiguous row, which the sparse kernels gather):

* ``W_enc_Fd`` [F, d]: encoder rows; pre-activations ``pre_BF = x_Bd @ W_enc_Fd.T + b_enc_F``.
* ``W_dec_Fd`` [F, d]: decoder rows (the dictionary atoms), kept at unit L2 norm.
* ``b_enc_F`` [F], ``b_dec_d`` [d].

``forward`` works in the trainer's normalised input space; weights are saved in the
input's original scale (see :func:`vsae.sae.io.fold_scale`).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from torch import nn

from vsae.errors import VsaeError
from vsae.sae.io import load as load_sae
from vsae.sae.io import resolve_pretrained, with_known
from vsae.sae.io import save as save_sae
from vsae.sae.sae_config import SAEConfig
from vsae.sae.sparse import Pattern, sparse_decode, sparse_encode_values
from vsae.sae.step import fixed_shapes_on, in_global_batch, sum_over_ranks_
from vsae.shapes import Bool, Float, Int, Tensor

FnT = TypeVar("FnT", bound=Callable[..., Any])


@dataclass
class SparseCodes:
    """A batch of codes: values ``val_N`` at the positions of ``pat`` (CSR order)."""

    pat: Pattern
    val_N: torch.Tensor

    @property
    def row_N(self) -> torch.Tensor:
        return self.pat.row_N

    @property
    def col_N(self) -> torch.Tensor:
        return self.pat.col_N

    @property
    def n_rows(self) -> int:
        return self.pat.n_rows

    @property
    def n_latents(self) -> int:
        return self.pat.n_cols

    def dense(self) -> Float[Tensor, "B F"]:
        z_BF = self.val_N.new_zeros(self.n_rows, self.n_latents)
        z_BF[self.row_N, self.col_N] = self.val_N
        return z_BF

    def fired_F(self) -> Bool[Tensor, " F"]:
        """Bool [F]: latents with a non-zero value in this batch."""
        nz = (self.val_N.detach() != 0).to(torch.int32)  # fixed shapes: no host sync
        return (
            torch.zeros(self.n_latents, dtype=torch.int32, device=nz.device).index_add_(0, self.col_N, nz) > 0
        )

    def l0(self) -> float:
        return float((self.val_N.detach() != 0).sum()) / max(self.n_rows, 1)


@dataclass
class SAEOutput:
    """What ``forward`` returns: reconstruction, latents and the loss terms.

    ``losses["loss"]`` is the total to minimise; the other entries are its weighted
    parts (``mse`` = mean over rows of the summed squared error) and diagnostics.
    ``z`` is dense [B, F]; the top-k family also has ``codes`` (sparse, no dense copy made
    unless ``z`` is read).
    """

    x_hat: torch.Tensor
    losses: dict[str, torch.Tensor]
    codes: SparseCodes | None = None
    z_dense: torch.Tensor | None = None
    extra: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def z(self) -> torch.Tensor:
        if self.z_dense is None:
            assert self.codes is not None
            self.z_dense = self.codes.dense()
        return self.z_dense

    def fired_F(self) -> torch.Tensor:
        if self.codes is not None:
            return self.codes.fired_F()
        return (self.z.detach() != 0).any(0)

    def l0(self) -> float:
        if self.codes is not None:
            return self.codes.l0()
        return float((self.z.detach() != 0).sum(-1).float().mean())


def gather_entries(
    m_BF: Float[Tensor, "B F"], row_N: Int[Tensor, " N"], col_N: Int[Tensor, " N"]
) -> Float[Tensor, " N"]:
    """m[row, col] through a flat index (faster than 2-D advanced indexing): [N]."""
    return m_BF.reshape(-1).index_select(0, row_N * m_BF.shape[1] + col_N)


def _global_variance(e_Bd: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ||e - mean(e)||^2, over the global batch of a distributed step
    (:func:`vsae.sae.step.global_batch`)."""
    n: float | torch.Tensor = float(e_Bd.shape[0])  # a host number (a device tensor would be a blocking copy)
    s1 = e_Bd.sum(0)
    s2 = e_Bd.pow(2).sum()
    if in_global_batch():
        stats = sum_over_ranks_(torch.cat([s1, s2[None], e_Bd.new_tensor([n])]))
        s1, s2, n = stats[:-2], stats[-2], stats[-1]
    return (s2 - s1.pow(2).sum() / n) / n


def mse_sum(x_hat_Bd: Float[Tensor, "B d"], x_Bd: Float[Tensor, "B d"]) -> Float[Tensor, ""]:
    """Mean over rows of the squared error summed over features."""
    return (x_hat_Bd - x_Bd).pow(2).sum(-1).mean()


def _any_input(fn: FnT) -> FnT:
    """Let ``encode``/``decode`` take numpy arrays, other float dtypes, other devices and any
    leading dimensions (``[..., d]``: one row [d], rows [B, d], patch tokens [B, T, d]).

    The SAE computes in its own dtype and device; the result comes back as the input's kind
    (numpy stays numpy, a float16/bfloat16 tensor comes back in that dtype) and leading shape
    (a row [d] as [F], tokens [B, T, d] as [B, T, F]). Inputs already in the SAE's dtype and
    device pass straight through (autograd intact).
    """

    @functools.wraps(fn)
    def wrapper(self: SAE, x: Any, *args: Any, **kwargs: Any) -> Any:  # x: a tensor or numpy array (else: TypeError below)
        p = self.W_enc_Fd
        if torch.is_tensor(x) and x.dtype == p.dtype and x.device == p.device and x.ndim == 2:
            return fn(self, x, *args, **kwargs)
        if isinstance(x, np.ndarray):
            t = torch.from_numpy(np.ascontiguousarray(x))
        elif isinstance(x, torch.Tensor):
            t = x
        else:
            raise TypeError(f"{fn.__name__} takes a torch.Tensor or numpy array, got {type(x).__name__}")
        if t.ndim == 0:
            raise ValueError(f"{fn.__name__} takes [..., n] (rows [B, n], tokens [B, T, n]), got a scalar")
        out = fn(self, t.to(p.device, p.dtype).reshape(-1, t.shape[-1]), *args, **kwargs)
        out = out.reshape(*t.shape[:-1], out.shape[-1])
        if isinstance(x, np.ndarray):
            kind = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32
            return out.detach().cpu().numpy().astype(kind, copy=False)
        return out.to(t.device, t.dtype if t.is_floating_point() else out.dtype)

    wrapper.__vsae_any_input__ = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


class SAE(nn.Module):
    """Base class: subclasses define ``encode`` (inference) and ``forward`` (training).

    Hugging Face style: ``SAE.from_pretrained(dir_or_hub_id)`` / ``sae.save_pretrained(dir)``;
    ``encode``/``decode`` accept torch tensors of any float dtype and numpy arrays.
    """

    arch: ClassVar[str] = ""  # the registered name (set by vsae.sae.arch_registry.register_arch)
    # The architecture's config class: SAEConfig plus its own settings, declared in its file.
    config_class: ClassVar[type[SAEConfig]] = SAEConfig
    sparse_codes = False  # the top-k family decodes sparsely

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        for name in ("encode", "decode"):
            fn = cls.__dict__.get(name)
            if fn is not None and not getattr(fn, "__vsae_any_input__", False):
                setattr(cls, name, _any_input(fn))

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        device: str | torch.device = "cpu",
        revision: str | None = None,
        subfolder: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool | None = None,
    ) -> SAE:
        """Load an SAE from a local directory (written by ``save_pretrained`` or ``vsae train``) or a
        Hugging Face hub repo id holding one (``subfolder`` for a repo of several SAEs).

        Hub downloads go through ``huggingface_hub`` and honour ``HF_HUB_OFFLINE`` (then only the
        local cache is used); a missing repo or cache entry is a ``VsaeError``, not a traceback.
        """
        where = resolve_pretrained(name_or_path, revision, subfolder, cache_dir, local_files_only)
        sae = with_known(load_sae(where, device), name_or_path)
        if not isinstance(sae, cls):
            raise VsaeError(f"{name_or_path} holds a {type(sae).__name__}, not a {cls.__name__}; use SAE")
        return sae

    def save_pretrained(self, directory: str | os.PathLike) -> str:
        """Write ``sae.safetensors`` + ``config.json`` into ``directory`` (``from_pretrained`` reads it)."""
        return str(save_sae(self, directory))

    def push_to_hub(
        self,
        repo_id: str,
        *,
        private: bool = False,
        revision: str | None = None,
        token: str | None = None,
        commit_message: str = "Upload SAE with vsae",
    ) -> str:
        """Upload this SAE to the hub repo ``repo_id`` with a generated model card and a SAELens
        copy (:func:`vsae.sae.publish.push`); returns the commit URL. A trained run directory
        carries more into the card: ``vsae push RUN_DIR REPO_ID``."""
        import tempfile

        from vsae.sae.publish import push

        with tempfile.TemporaryDirectory() as tmp:
            save_sae(self, tmp)
            return push(
                tmp, repo_id, private=private, revision=revision, token=token, commit_message=commit_message
            )

    # ----- the names SAELens / dictionary_learning users type (views of the parameters) ----
    @property
    def W_enc(self) -> torch.Tensor:
        """The encoder as SAELens lays it out: [d_in, d_sae] (a view of ``W_enc_Fd``)."""
        return self.W_enc_Fd.T

    @property
    def W_dec(self) -> torch.Tensor:
        """The decoder [d_sae, d_in] (``W_dec_Fd``: one dictionary atom per row)."""
        return self.W_dec_Fd

    @property
    def b_enc(self) -> torch.Tensor:
        """The encoder bias [d_sae] (``b_enc_F``)."""
        return self.b_enc_F

    @property
    def b_dec(self) -> torch.Tensor:
        """The decoder bias [d_in] (``b_dec_d``)."""
        return self.b_dec_d

    @property
    def device(self) -> torch.device:
        """The device of the SAE's parameters."""
        return self.W_enc_Fd.device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the SAE's parameters."""
        return self.W_enc_Fd.dtype

    def __init__(self, cfg: SAEConfig):
        super().__init__()
        self.cfg = cfg
        F, d = cfg.d_sae, cfg.d_in
        self.W_enc_Fd = nn.Parameter(torch.empty(F, d))
        self.b_enc_F = nn.Parameter(torch.zeros(F))
        self.W_dec_Fd = nn.Parameter(torch.empty(F, d))
        self.b_dec_d = nn.Parameter(torch.zeros(d))

    # ----- what an architecture may override (see docs/extending.md) --------------------------
    @classmethod
    def check_config(cls, cfg: SAEConfig) -> None:
        """Raise ``VsaeError`` for a config this architecture cannot use (called by SAEConfig)."""

    @torch.no_grad()
    def fold_scale_(self, scale: float) -> None:
        """In place: an SAE trained on ``x * scale`` becomes one for raw ``x``. Biases (and any
        threshold, in subclasses) are divided by ``scale``; decoder rows keep unit norm."""
        self.b_enc_F.div_(scale)
        self.b_dec_d.div_(scale)

    # ----- initialisation and the unit-norm constraint -----------------------------------
    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Random unit-norm decoder rows; encoder = decoder transpose (Gao et al. 2024); zero biases."""
        F, d = self.W_dec_Fd.shape
        bound = 1.0 / math.sqrt(d)
        w = torch.rand(F, d, generator=generator) * 2 * bound - bound
        self.W_dec_Fd.copy_(w)
        self.normalize_decoder()
        self.W_enc_Fd.copy_(self.W_dec_Fd)
        self.b_enc_F.zero_()
        self.b_dec_d.zero_()

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        self.W_dec_Fd.div_(self.W_dec_Fd.norm(dim=1, keepdim=True).clamp_min(1e-8))

    @torch.no_grad()
    def remove_parallel_decoder_grad(self) -> None:
        """Project out the gradient component parallel to each (unit) decoder row."""
        g = self.W_dec_Fd.grad
        if g is None:
            return
        w = self.W_dec_Fd
        g.sub_((g * w).sum(1, keepdim=True) * w)

    # ----- the common interface -------------------------------------------------------------
    def pre_acts(self, x_Bd: Float[Tensor, "B d"]) -> Float[Tensor, "B F"]:
        return torch.addmm(self.b_enc_F, x_Bd, self.W_enc_Fd.T)

    def encode(self, x_Bd: Float[Tensor, "B d"]) -> Float[Tensor, "B F"]:
        """Latents z [B, F] with inference semantics (independent of the rest of the batch)."""
        raise NotImplementedError

    @_any_input
    def decode(self, z_BF: Float[Tensor, "B F"]) -> Float[Tensor, "B d"]:
        """Reconstruction x_hat [B, d] of latents z [B, F]."""
        return torch.addmm(self.b_dec_d, z_BF, self.W_dec_Fd)

    def forward(
        self,
        x_Bd: Float[Tensor, "B d"],
        dead_F: Bool[Tensor, " F"] | None = None,
        sparsity_scale: float = 1.0,
    ) -> SAEOutput:
        """Training forward: reconstruction, latents and loss terms.

        ``dead_F`` (bool) marks latents dead over the trainer's window (aux-k loss);
        ``sparsity_scale`` in [0, 1] is the sparsity-coefficient warm-up factor.
        """
        raise NotImplementedError

    # ----- helpers for the top-k family -------------------------------------------------------
    def _sparse_codes(
        self, x_Bd: torch.Tensor, pre_BF: torch.Tensor, row_N: torch.Tensor, col_N: torch.Tensor
    ) -> SparseCodes:
        """Codes: ReLU of the selected pre-activations, with sparse encoder gradients."""
        pat = Pattern(row_N, col_N, x_Bd.shape[0], self.cfg.d_sae)
        pre_N = gather_entries(pre_BF, row_N, col_N)
        val_N = sparse_encode_values(pre_N, x_Bd, self.W_enc_Fd, self.b_enc_F, pat).relu()
        return SparseCodes(pat, val_N)

    def _sparse_forward(
        self, x_Bd: torch.Tensor, pre_BF: torch.Tensor, row_N: torch.Tensor, col_N: torch.Tensor
    ) -> tuple[SparseCodes, torch.Tensor]:
        """Codes and their sparse reconstruction x_hat [B, d]."""
        codes = self._sparse_codes(x_Bd, pre_BF, row_N, col_N)
        x_hat = sparse_decode(codes.val_N, self.W_dec_Fd, codes.pat) + self.b_dec_d
        return codes, x_hat

    def _aux_k_loss(
        self, x_Bd: torch.Tensor, x_hat_Bd: torch.Tensor, pre_BF: torch.Tensor, dead_F: torch.Tensor | None
    ) -> torch.Tensor:
        """Auxiliary-k loss (Gao et al. 2024): the top-k_aux dead latents reconstruct the residual.

        Normalised by the residual's variance, as in dictionary_learning's BatchTopK trainer.
        """
        zero = x_Bd.new_zeros(())
        aux_k = int(getattr(self.cfg, "aux_k", 0) or 0)  # the top-k family's TopKConfig.aux_k
        if dead_F is None or not aux_k or not self.training:
            return zero
        if fixed_shapes_on():  # the trainer's sync-free step
            return self._aux_k_loss_fixed(x_Bd, x_hat_Bd, pre_BF, dead_F)
        n_dead = int(dead_F.sum())
        if n_dead == 0:
            return zero
        k_aux = min(aux_k, n_dead)
        B = x_Bd.shape[0]
        with torch.no_grad():
            dead_cols = torch.nonzero(dead_F).squeeze(1)
            _, j_Bk = pre_BF.index_select(1, dead_cols).topk(k_aux, dim=-1, sorted=False)
        row_N = torch.arange(B, device=x_Bd.device).repeat_interleave(k_aux)
        col_N = dead_cols.index_select(0, j_Bk.reshape(-1))
        pat = Pattern(row_N, col_N, B, self.cfg.d_sae)
        pre_N = gather_entries(pre_BF, row_N, col_N)
        val_N = sparse_encode_values(pre_N, x_Bd, self.W_enc_Fd, self.b_enc_F, pat).relu()
        e_hat = sparse_decode(val_N, self.W_dec_Fd, pat)
        e = (x_Bd - x_hat_Bd).detach()
        denom = _global_variance(e).clamp_min(1e-12)
        return (e_hat - e).pow(2).sum(-1).mean() / denom

    def _aux_k_loss_fixed(
        self, x_Bd: torch.Tensor, x_hat_Bd: torch.Tensor, pre_BF: torch.Tensor, dead_F: torch.Tensor
    ) -> torch.Tensor:
        """The same auxiliary-k loss with fixed shapes (no host sync): the top aux_k of each row
        over all latents with the live ones masked to -inf; entries that land on live latents
        (fewer than aux_k dead) get value 0, and the loss is 0 when none is dead."""
        B, F = pre_BF.shape
        k_aux = min(int(getattr(self.cfg, "aux_k", 0) or 0), F)
        with torch.no_grad():
            masked = torch.where(dead_F, pre_BF, float("-inf"))  # a scalar argument: no host->device copy
            _, col_Bk = masked.topk(k_aux, dim=-1, sorted=False)
            col_Bk, _ = col_Bk.sort(dim=-1)
        row_N = torch.arange(B, device=x_Bd.device)[:, None].expand(B, k_aux).reshape(-1)
        col_N = col_Bk.reshape(-1)
        pat = Pattern(row_N, col_N, B, F)
        pre_N = gather_entries(pre_BF, row_N, col_N)
        keep_N = dead_F.index_select(0, col_N).to(pre_N.dtype)
        val_N = sparse_encode_values(pre_N, x_Bd, self.W_enc_Fd, self.b_enc_F, pat).relu() * keep_N
        e_hat = sparse_decode(val_N, self.W_dec_Fd, pat)
        e = (x_Bd - x_hat_Bd).detach()
        denom = _global_variance(e).clamp_min(1e-12)
        return (e_hat - e).pow(2).sum(-1).mean() / denom * dead_F.any().to(e.dtype)

    def _topk_losses(
        self, x_Bd: torch.Tensor, x_hat: torch.Tensor, pre_BF: torch.Tensor, dead_F: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        mse = mse_sum(x_hat, x_Bd)
        aux = self._aux_k_loss(x_Bd, x_hat, pre_BF, dead_F)
        coeff = float(getattr(self.cfg, "aux_coeff", 0.0))  # TopKConfig.aux_coeff
        return {"loss": mse + coeff * aux, "mse": mse.detach(), "aux": aux.detach()}

    def _pre_acts_nograd(self, x_Bd: torch.Tensor) -> torch.Tensor:
        """Pre-activations [B, F] without autograd, written into a reused buffer.

        Reusing the buffer saves the page faults of a fresh B x F allocation every step
        (large allocations go back to the OS on free); callers copy what they keep.
        """
        B, F = x_Bd.shape[0], self.cfg.d_sae
        buf = self.__dict__.get("_pre_buf")
        if buf is None or buf.shape != (B, F) or buf.dtype != x_Bd.dtype or buf.device != x_Bd.device:
            buf = torch.empty(B, F, dtype=x_Bd.dtype, device=x_Bd.device)
            self.__dict__["_pre_buf"] = buf
        with torch.no_grad():
            if torch.is_autocast_enabled(x_Bd.device.type):  # out= would bypass autocast
                return buf.copy_(torch.addmm(self.b_enc_F, x_Bd, self.W_enc_Fd.T))
            return torch.addmm(self.b_enc_F, x_Bd, self.W_enc_Fd.T, out=buf)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__.copy()
        state = dict(state)
        state.pop("_pre_buf", None)
        return state
