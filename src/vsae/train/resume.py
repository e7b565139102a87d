"""What `--resume` promises: the run continues only with every setting that changes the result
unchanged (training hyper-parameters, SAE configuration, and the very same activation store).

Settings that do not change the trained weights (`--log-every`, `--ckpt-every`, `--device`,
`--wandb`, validation) may differ; anything else is refused with a one-line error naming it.
"""

from __future__ import annotations

import contextlib
from typing import Any

from vsae.errors import VsaeError
from vsae.sae.sae_config import SAEConfig
from vsae.train.train_config import TrainConfig

# TrainConfig fields -> (flag, how to read the value actually used).
TRAIN_SETTINGS = {
    "steps": ("--steps", "steps"),
    "batch_size": ("--batch-size", "batch_size"),
    "lr": ("--lr", "lr"),
    "warmup_steps": ("--warmup-steps", "warmup"),
    "decay_start": ("decay_start", "decay_start"),
    "sparsity_warmup_steps": ("sparsity_warmup_steps", "sparsity_warmup"),
    "grad_clip": ("--grad-clip", "grad_clip"),
    "seed": ("--seed", "seed"),
    "dead_window_rows": ("--dead-window", "dead_window"),
    "init_rows": ("init_rows", "init_rows"),
    "b_dec_init": ("b_dec_init", "b_dec_init"),
    "normalize": ("normalize", "normalize"),
}
# SAEConfig fields that are not settings of the result (or are checked elsewhere).
SAE_IGNORED = ("name", "provenance")
SAE_FLAGS = {
    "k": "--k",
    "aux_k": "--aux-k",
    "aux_coeff": "--aux-coeff",
    "l1_coeff": "--l1",
    "l0_coeff": "--l0",
    "groups": "--groups",
    "d_sae": "--expansion",
    "arch": "--arch",
}


def _refuse(flag: str, mine: Any, saved: Any) -> VsaeError:
    return VsaeError(
        f"--resume with {flag} {mine} but the run used {saved}; resume with the same value, or train into a new --out"
    )


def saved_train_config(state: dict[str, Any], where: str) -> TrainConfig:
    """The TrainConfig recorded in a run's train_state.json, or a one-line error."""
    try:
        return TrainConfig.from_json(state["train_cfg"])
    except (KeyError, TypeError, VsaeError) as e:
        raise VsaeError(
            f"{where} has no valid train_cfg ({str(e)[:100]}); delete the run directory to restart"
        ) from None


def check_train_settings(state: dict[str, Any], mine: TrainConfig, where: str) -> None:
    """Refuse resuming with any TrainConfig setting that changes the result."""
    saved = saved_train_config(state, where)
    for flag, attr in TRAIN_SETTINGS.values():
        a, b = getattr(mine, attr), getattr(saved, attr)
        if a != b:
            raise _refuse(flag, a, b)


def check_store_identity(state: dict[str, Any], fingerprint: str | None) -> None:
    """Refuse resuming on another store than the one the run trained on (by content, not path)."""
    saved = (state.get("data") or {}).get("store")
    if saved is not None and fingerprint is not None and saved != fingerprint:
        raise VsaeError(
            "--resume with another --acts store than the run trained on (its shards' checksums differ); "
            "resume with the same store, or train into a new --out"
        )


def check_sae_settings(saved_cfg: Any, mine: dict[str, Any], name: str) -> None:
    """Refuse resuming SAE `name` with a configuration other than its checkpoint's."""
    if not isinstance(saved_cfg, dict):
        raise VsaeError(
            f"the checkpoint of {name} has no SAE configuration; delete the run directory to restart"
        )
    # A checkpoint of older vsae carries every architecture's settings: compare its own (a config
    # that does not load is compared as written, and the differing key named below).
    with contextlib.suppress(VsaeError, TypeError):
        saved_cfg = SAEConfig.from_json(saved_cfg).to_json()
    for key in sorted(set(saved_cfg) | set(mine)):
        if key in SAE_IGNORED:
            continue
        a, b = mine.get(key), saved_cfg.get(key)
        if isinstance(a, list | tuple) and isinstance(b, list | tuple):
            a, b = list(a), list(b)
        if a != b:
            raise _refuse(SAE_FLAGS.get(key, key), a, b)
