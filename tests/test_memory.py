"""`vsae.memory`: freed large buffers go back to the OS even when small live allocations sit
between them (the pattern that made a 10M-row extraction's memory grow), and tensors of a few
MiB are reused from the heap instead of being mmapped and page-faulted on every allocation
(issue 30: half of an extraction's wall time in the kernel with the old 1 MiB threshold)."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

PATTERN = """
import ctypes, sys
libc = ctypes.CDLL("libc.so.6"); libc.malloc.restype = ctypes.c_void_p
from vsae.memory import limit_heap_growth, release_free_memory
if sys.argv[1] != "glibc":
    assert limit_heap_growth()
import numpy as np
def rss_anon_mib():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon"):
            return int(line.split()[1]) // 1024
a = np.ones(4 << 20, np.uint8); del a  # a freed 4 MiB block raises glibc's dynamic threshold
big, small = [], []
for _ in range(200):  # 2 MiB batch buffers, each followed by a small live allocation
    big.append(np.ones(2 << 20, np.uint8))
    small.append(libc.malloc(4096))
before = rss_anon_mib()
big.clear()
if sys.argv[1] == "release":
    release_free_memory()
print(before, rss_anon_mib())
"""

FAULTS = """
import resource, sys
import numpy as np
from vsae.memory import limit_heap_growth
assert limit_heap_growth(*[int(a) for a in sys.argv[1:]])
for _ in range(3):
    np.ones(8 << 20, np.uint8)  # warm up
r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(40):  # a forward pass's transient 8 MiB tensors: allocated, used, freed
    a = np.ones(8 << 20, np.uint8); del a
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)
"""


def _env():
    import os

    return {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}


def _run(code: str, *args: str) -> list[int]:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=_env())
    assert out.returncode == 0, out.stderr
    return [int(x) for x in out.stdout.split()]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc allocator behaviour")
def test_freed_batch_buffers_return_to_the_os():
    before, after = _run(PATTERN, "glibc")  # glibc's default keeps the fragmented heap: the control
    assert before > 350 and after > 350
    before, after = _run(PATTERN, "release")  # the setting + one release (extraction: per shard)
    assert before > 350 and after < 100


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc allocator behaviour")
def test_transient_tensors_are_reused_not_page_faulted():
    """Old setting (1 MiB): every 8 MiB tensor is a fresh mmap, faulted in page by page."""
    (old,) = _run(FAULTS, str(1 << 20))
    (new,) = _run(FAULTS)
    assert old > 40 * 256, old  # the control: at least a MiB faulted in per allocation
    assert new < old / 10, (new, old)


def test_extraction_releases_free_memory_once_per_shard(tmp_path, monkeypatch):
    import vsae.extract.images as ex
    from vsae.data.fake_images import noise
    from vsae.models import from_module
    from vsae.store import ActivationStore

    calls = []
    monkeypatch.setattr(ex, "release_free_memory", lambda: calls.append(1) or True)
    for i in range(12):
        noise(i, (8, 8)).save(tmp_path / f"{i:02d}.png")
    (tmp_path / "list.txt").write_text("".join(f"{i:02d}.png\n" for i in range(12)))
    net = nn.Sequential(nn.Flatten(), nn.Linear(192, 4))

    def prep(images):
        return torch.from_numpy(
            np.stack([np.asarray(im.resize((8, 8)), np.float32) for im in images])
        ).permute(0, 3, 1, 2)

    cfg = ex.ExtractConfig(model="m", hooks=("embed",), tokens="cls", data=str(tmp_path / "list.txt"),
                           out=str(tmp_path / "s"), batch_size=2, num_workers=0, progress=False,
                           rows_per_shard=4, dtype="float32")  # fmt: skip
    ex.extract(cfg, model=from_module(net, prep))
    n_shards = len(ActivationStore.open(tmp_path / "s").manifest["shards"])
    assert n_shards >= 3 and len(calls) == n_shards
