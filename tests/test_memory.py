"""`vsae.memory.limit_heap_growth`: freed large buffers go back to the OS even when small live
allocations sit between them (the pattern that made a 10M-row extraction's memory grow)."""

import subprocess
import sys

import pytest

PATTERN = """
import ctypes, sys
libc = ctypes.CDLL("libc.so.6"); libc.malloc.restype = ctypes.c_void_p
if sys.argv[1] == "1":
    from vsae.memory import limit_heap_growth
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
print(before, rss_anon_mib())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc allocator behaviour")
def test_freed_batch_buffers_return_to_the_os():
    def run(fix: str) -> tuple[int, int]:
        env = {k: v for k, v in __import__("os").environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
        out = subprocess.run([sys.executable, "-c", PATTERN, fix], capture_output=True, text=True, env=env)
        assert out.returncode == 0, out.stderr
        before, after = map(int, out.stdout.split())
        return before, after

    before, after = run("0")  # glibc's default keeps the fragmented heap: the control shows the test can fail
    assert before > 350 and after > 350
    before, after = run("1")
    assert before > 350 and after < 100
