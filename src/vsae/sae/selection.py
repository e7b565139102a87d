"""Which rows an SAE was trained on (the hook and token selection its provenance records, from
the training store's manifest) against the rows a command applies it to: a store's (``vsae eval
recon / ms / top-images / probe / ood``, ``vsae encode``) or a splice's (``vsae eval recon
--model``, ``vsae steer``), which applies the SAE to every token at its hook.

An SAE trained on ``--tokens mean`` rows and applied to patch tokens (or to another hook) gives
numbers that look like results (issue 30: FVU 0.78 without a word). A difference is one line
naming both selections; ``force=True`` (``--force``) applies the SAE anyway, with that line as a
warning on stderr. A side that records nothing (a SAELens SAE, an .npy file) is not checked."""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

from vsae.errors import VsaeError

# Selections of single tokens at a hook: an SAE trained on any of them applies to every token of
# a splice. "random:K" draws patch tokens, so it stands for "patches"; "pooled": a pooled hook
# such as `embed` (one vector per image, the same in a store and in a splice).
PER_TOKEN = ("all", "patches", "pooled")
_NEGATIVE_LAYER = re.compile(r"^\w+\.-\d+$")  # resid.-1: its block depends on the model


def selection(provenance: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    """(hook, token selection) recorded in a provenance; ``random:K`` reads as ``patches``, and a
    remark in parentheses is dropped (``all (padding excluded)`` is ``all``)."""
    prov = provenance or {}
    hook, tokens = prov.get("hook"), prov.get("tokens")
    tok = None if tokens is None else str(tokens).split(" (")[0].strip()
    if tok is not None and tok.startswith("random:"):
        tok = "patches"
    return (None if hook is None else str(hook)), tok


def _show(hook: str | None, tokens: str | None) -> str:
    return f"hook={hook or '?'}, tokens={tokens or '?'}"


def _refuse(msg: str, force: bool) -> str:
    if not force:
        raise VsaeError(f"{msg}; use the SAE trained on these rows, or pass --force to apply it anyway")
    print(f"warning: {msg} (applied anyway: --force)", file=sys.stderr)
    return msg


def check_rows(
    sae_provenance: Mapping[str, Any] | None,
    rows_provenance: Mapping[str, Any] | None,
    *,
    sae: str = "the SAE",
    rows: str = "the store",
    force: bool = False,
) -> str | None:
    """Refuse (or with ``force`` warn, returning the message) when a store's hook or token
    selection differs from the one the SAE was trained on."""
    mine, theirs = selection(sae_provenance), selection(rows_provenance)
    differ = [i for i in (0, 1) if mine[i] is not None and theirs[i] is not None and mine[i] != theirs[i]]
    if differ == [0] and any(_NEGATIVE_LAYER.match(h or "") for h in (mine[0], theirs[0])):
        differ = []  # resid.-1 against resid.11: cannot tell without the model
    if not differ:
        return None
    return _refuse(
        f"SAE {sae} was trained on rows with {_show(*mine)} but {rows} holds {_show(*theirs)}", force
    )


def check_splice(
    sae_provenance: Mapping[str, Any] | None,
    hook: str,
    *,
    sae: str = "the SAE",
    what: str = "the splice",
    force: bool = False,
    canonical: Callable[[str], str] | None = None,
) -> str | None:
    """Refuse (or with ``force`` warn) when a splice at ``hook`` -- the SAE applied to every
    token there -- does not match the SAE's training rows: another hook, or a selection that is
    not single tokens (``mean``, ``cls``; ``all``, ``patches``, ``random:K`` and pooled hooks fit).
    ``canonical`` maps a hook name to the model's canonical one (``resid.-1`` -> ``resid.11``),
    applied to the SAE's recorded hook; ``hook`` is canonical already."""
    s_hook, s_tok = selection(sae_provenance)
    if s_hook is not None and canonical is not None:
        with contextlib.suppress(VsaeError):  # a hook this model lacks: reported as a difference below
            s_hook = canonical(s_hook)
    bad_hook = s_hook is not None and s_hook != hook
    bad_tok = s_tok is not None and s_tok not in PER_TOKEN
    if not (bad_hook or bad_tok):
        return None
    return _refuse(
        f"SAE {sae} was trained on rows with {_show(s_hook, s_tok)} but {what} applies it to every token "
        f"at hook={hook} (tokens=all)",
        force,
    )
