"""`--device` is parsed by one helper: a device this machine has, or one line naming those it has."""

import pytest
import torch

from vsae.device import available_devices, parse_device
from vsae.errors import VsaeError


def test_cpu_and_errors_name_the_available_devices():
    assert parse_device(" cpu ") == "cpu" and "cpu" in available_devices()
    for bad, why in (("bogus", "is not a device"), ("gpu", "GPUs are 'cuda'"), ("cuda:99", "cuda")):
        with pytest.raises(VsaeError, match=why) as e:
            parse_device(bad)
        assert "available here: cpu" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible: --device cuda is valid here")
def test_cuda_on_a_machine_without_one():
    with pytest.raises(VsaeError, match="--device cuda: .*; available here: cpu$"):
        parse_device("cuda")
