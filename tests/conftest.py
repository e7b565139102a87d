import os

import pytest
import torch

# Tests run 2-way parallel on 2 cores: one thread per worker keeps them from fighting.
torch.set_num_threads(1)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def seed():
    torch.manual_seed(0)
    return 0
