import os

# Shapes are checked at run time in the tests (issue 24): every function and dataclass of these
# packages is wrapped by jaxtyping + beartype, so a `Float[Tensor, "B d"]` argument of the wrong
# shape, dtype or type fails with a type-check error. The hook must be installed before any of them
# is imported, so it comes first (each pytest-xdist worker imports this file too). Opt out with
# VSAE_TYPECHECK=0 (see docs/ARCHITECTURE.md, "Shapes", for its cost).
TYPECHECKED = ("vsae.store", "vsae.eval", "vsae.sae")
if os.environ.get("VSAE_TYPECHECK", "1") != "0":
    from jaxtyping import install_import_hook

    # ints pass where a float is annotated (PEP 484's numeric tower), as mypy lets them
    install_import_hook(TYPECHECKED, "beartype.beartype(conf=beartype.BeartypeConf(is_pep484_tower=True))")

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import settings  # noqa: E402

# Property tests (hypothesis): few, fixed examples by default so they take seconds and never flake
# (no deadline: 2 shared cores), no example database written; VSAE_HYPOTHESIS=thorough for a search.
settings.register_profile("vsae", max_examples=15, deadline=None, derandomize=True, database=None)
settings.register_profile("thorough", max_examples=500, deadline=None, database=None)
settings.load_profile(os.environ.get("VSAE_HYPOTHESIS", "vsae"))

# Tests run 2-way parallel on 2 cores: one thread per worker keeps them from fighting.
torch.set_num_threads(1)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def seed():
    torch.manual_seed(0)
    return 0
