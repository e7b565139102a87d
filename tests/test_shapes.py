"""The shape annotations (`Float[Tensor, "N d"]`, vsae.shapes) are checked at run time in the tests:
tests/conftest.py installs jaxtyping's import hook with beartype for vsae.store, vsae.eval and
vsae.sae before any of them is imported. A wrong shape passed to an annotated public function is
a type-check error; a right one passes."""

import os
import sys

import numpy as np
import pytest
import torch
from jaxtyping import TypeCheckError

CHECKED = ("vsae.store", "vsae.eval", "vsae.sae")
pytestmark = pytest.mark.skipif(
    os.environ.get("VSAE_TYPECHECK") == "0", reason="run-time shape checks turned off (VSAE_TYPECHECK=0)"
)


def test_every_imported_module_of_the_checked_packages_is_checked() -> None:
    import vsae.eval.compare
    import vsae.sae.sparse
    import vsae.store.writer  # noqa: F401

    loaded = {n: m for n, m in sys.modules.items() if n.startswith(CHECKED) and getattr(m, "__file__", None)}
    assert {"vsae.eval.compare", "vsae.sae.sparse", "vsae.store.writer"} <= set(loaded)
    unchecked = [n for n, m in loaded.items() if type(m.__spec__.loader).__name__ != "_JaxtypingLoader"]
    assert not unchecked, f"imported before tests/conftest.py installed the hook: {unchecked}"


def test_a_wrong_shape_is_a_type_check_error_in_eval() -> None:
    from vsae.eval.compare import decoder_cosines
    from vsae.eval.recon import reconstruction_metrics

    assert decoder_cosines(np.ones((4, 3)), torch.ones(5, 3)).shape == (4, 5)
    with pytest.raises(TypeCheckError, match="W_b_Gd"):
        decoder_cosines(np.ones((4, 3)), np.ones((5, 2)))  # widths d differ
    x = np.ones((4, 3))
    reconstruction_metrics(x, x, np.zeros((4, 6)))
    with pytest.raises(TypeCheckError, match="x_hat_Nd"):
        reconstruction_metrics(x, np.ones((4, 2)), np.zeros((4, 6)))
    with pytest.raises(TypeCheckError, match="z_NF"):
        reconstruction_metrics(x, x, np.zeros((5, 6)))  # one latent row too many
    with pytest.raises(TypeCheckError, match="x_Nd"):
        reconstruction_metrics(np.ones((4, 3), np.int64), x, np.zeros((4, 6)))  # not floats


def test_a_wrong_shape_is_a_type_check_error_in_store(tmp_path) -> None:
    from vsae.store import StoreWriter

    w = StoreWriter.create_or_resume(tmp_path / "s", d=3)
    w.add(torch.ones(2, 3), np.arange(2), np.zeros(2, np.int64))
    with pytest.raises(TypeCheckError, match="rows_Nd"):
        w.add(torch.ones(3), np.arange(3), np.zeros(3, np.int64))  # one row without its batch axis
    with pytest.raises(TypeCheckError, match="token_idx"):
        w.add(torch.ones(2, 3), np.arange(2), np.zeros(3, np.int64))  # 3 token ids for 2 rows
