"""`import vsae` makes the sub-packages reachable (`vsae.models.from_module(...)` as the docs
write it) and stays cheap: nothing heavy is imported until a sub-package is used."""

import subprocess
import sys

CODE = """
import sys
import vsae
assert "torch" not in sys.modules, "import vsae imported torch"
from torch import nn
lm = vsae.models.from_module(nn.Linear(3, 2), lambda images: None, name="lin")
assert lm.family == "module"
assert callable(vsae.sae.load) and callable(vsae.extract.extract) and vsae.store.ActivationStore
try:
    vsae.no_such_thing
except AttributeError as e:
    assert "no_such_thing" in str(e)
else:
    raise SystemExit("vsae.no_such_thing did not raise AttributeError")
print("ok")
"""


def test_subpackages_reachable_after_import_vsae():
    r = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
