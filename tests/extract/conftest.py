import pytest

from vsae.models.tiny_models import TINY_KINDS, build_tiny


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_models")
    return {k: build_tiny(k, root / k) for k in TINY_KINDS}
