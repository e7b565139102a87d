"""The papers' experiments, one folder each (as diffusers keeps one folder per pipeline).

Each experiment folder holds its config, a runner split into named steps, a frozen typed result and
its report section. Generic mechanics (splices, edits, metrics) stay in `vsae.steer` and `vsae.eval`;
the embedded world plugs its parts in through registries, so nothing here imports `vsae.world`.
"""
