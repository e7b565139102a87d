"""DataLoader workers exit quietly when the main process is gone (issue 16: after `kill -9` of the
main process, workers printed a ConnectionResetError traceback)."""

import io
import os
import sys

import torch

from vsae.data import folder_source, iter_batches
from vsae.data.fake_images import noise
from vsae.data.loader import QuietWhenOrphaned


def test_orphaned_or_disconnected_worker_writes_nothing():
    buf = io.StringIO()
    alive = QuietWhenOrphaned(buf, os.getppid())
    alive.write("shown\n")
    try:
        raise ConnectionResetError(104, "Connection reset by peer")
    except ConnectionResetError:
        alive.write("Traceback ... ConnectionResetError\n")  # what print_exc writes while handling it
    orphan = QuietWhenOrphaned(buf, parent_pid=os.getppid() + 12345)
    orphan.write("Traceback of an orphan\n")
    assert buf.getvalue() == "shown\n"
    assert alive.getvalue() == "shown\n"  # other attributes come from the wrapped stream


def _stderr_is_quiet(images):
    return torch.tensor([[float(isinstance(sys.stderr, QuietWhenOrphaned))]] * len(images))


def test_workers_install_the_quiet_stderr(tmp_path):
    (tmp_path / "c").mkdir()
    for i in range(3):
        noise(i, (8, 8)).save(tmp_path / "c" / f"{i}.png")
    src = folder_source(tmp_path)
    got = [b.inputs for b in iter_batches(src, _stderr_is_quiet, 0, 3, 2, num_workers=1)]
    assert torch.cat(got).flatten().tolist() == [1.0, 1.0, 1.0]
    assert not isinstance(sys.stderr, QuietWhenOrphaned)  # the main process keeps its stderr


KILLED_PARENT = """
import sys, torch
torch.set_num_threads(1)
from vsae.data import folder_source, iter_batches
src = folder_source(sys.argv[1])
print("ready", flush=True)
while True:
    for b in iter_batches(src, lambda ims: {"x": torch.randn(len(ims), 3, 32, 32)}, 0, len(src), 1, num_workers=2):
        pass
"""


def test_kill_9_of_the_main_process_leaves_no_worker_traceback(tmp_path):
    """Before: 6 of 8 kills printed resource_sharer's ConnectionResetError traceback."""
    import signal
    import subprocess
    import time

    (tmp_path / "c").mkdir()
    for i in range(4):
        noise(i, (8, 8)).save(tmp_path / "c" / f"{i}.png")
    for delay in (0.5, 0.9, 1.3):
        err = tmp_path / "err.txt"
        with open(err, "w") as fe:
            p = subprocess.Popen(
                [sys.executable, "-c", KILLED_PARENT, str(tmp_path)],
                stdout=subprocess.PIPE,
                stderr=fe,
                text=True,
            )
            assert p.stdout.readline().strip() == "ready"
            time.sleep(delay)
            p.send_signal(signal.SIGKILL)
            p.wait()
            time.sleep(1.5)  # the orphaned workers notice and exit (they share the stderr file)
        assert "Traceback" not in err.read_text(), err.read_text()
