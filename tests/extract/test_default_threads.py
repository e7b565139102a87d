"""`vsae extract`'s default torch threads leave a core to each data-loader worker."""

import os

import pytest

from vsae.cli.extract import default_threads


@pytest.mark.parametrize(
    "cpus,workers,local_world,want",
    [(2, 2, None, 1), (2, 0, None, 2), (16, 2, None, 14), (16, 2, "4", 2), (4, 8, None, 1), (8, 1, "8", 1)],
)
def test_default_threads(monkeypatch, cpus, workers, local_world, want):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
    if local_world is None:
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", local_world)
    assert default_threads(workers) == want
