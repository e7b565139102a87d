"""`vsae train` (a sweep in one pass) and `vsae encode` (a sparse store of latents)."""

import numpy as np
import pytest
import torch

from vsae.cli import main
from vsae.sae import load
from vsae.store import ActivationStore, SparseActivationStore
from vsae.train.planted import make_planted


@pytest.fixture
def store(tmp_path, make_store):
    return make_store(tmp_path / "acts", make_planted(2000, 16, 32, 3, seed=2).x_Nd)


def test_train_sweep_then_encode(store, tmp_path, capsys):
    run = tmp_path / "run"
    main(
        [
            "train",
            "--acts",
            str(store),
            "--arch",
            "topk",
            "--expansion",
            "2,4",
            "--k",
            "2,3",
            "--steps",
            "20",
            "--batch-size",
            "100",
            "--lr",
            "3e-3",
            "--out",
            str(run),
            "--val",
            str(store),
            "--log-every",
            "5",
            "--ckpt-every",
            "10",
            "--quiet",
            "--export-saelens",
        ]
    )
    names = sorted(p.name for p in run.iterdir() if p.is_dir())
    assert names == ["topk-x2-k2", "topk-x2-k3", "topk-x4-k2", "topk-x4-k3"]
    sae = load(run / "topk-x4-k3")
    assert sae.cfg.d_sae == 64 and sae.cfg.k == 3 and sae.cfg.aux_k == 8
    assert sae.cfg.provenance["hook"] == "resid.0"
    assert (run / "topk-x4-k3" / "saelens" / "cfg.json").exists()
    out = tmp_path / "latents"
    main(
        [
            "encode",
            "--sae",
            str(run / "topk-x4-k3"),
            "--acts",
            str(store),
            "--out",
            str(out),
            "--batch-size",
            "300",
            "--quiet",
        ]
    )
    lat = ActivationStore.open(out)
    src = ActivationStore.open(store)
    assert isinstance(lat, SparseActivationStore) and len(lat) == len(src) and lat.d == 64
    np.testing.assert_array_equal(lat.image_index, src.image_index)
    np.testing.assert_array_equal(lat.token_index, src.token_index)
    with torch.no_grad():
        z = sae.encode(src[0:2000])
    torch.testing.assert_close(lat[0:2000], z)
    indptr, idx, val = lat.csr(0, 10)
    assert np.all(np.diff(indptr) == 3)  # TopK: exactly k stored per row
    assert lat.manifest["provenance"]["kind"] == "sae_latents"
    assert lat.manifest["provenance"]["hook"] == "resid.0"
    main(["encode", "--sae", str(run / "topk-x4-k3"), "--acts", str(store), "--out", str(out), "--quiet"])
    assert len(ActivationStore.open(out)) == 2000  # re-running a finished encode adds nothing


def test_cli_errors_are_one_line(store, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--acts", str(tmp_path / "nope"), "--steps", "5", "--out", str(tmp_path / "r")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
    with pytest.raises(SystemExit):
        main(["encode", "--sae", str(store), "--acts", str(store), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert "not a vsae SAE" in err and "\n" not in err
    log = tmp_path / "r2"
    with pytest.raises(SystemExit):
        main(
            [
                "train",
                "--acts",
                str(store),
                "--arch",
                "topk",
                "--k",
                "99",
                "--expansion",
                "2",
                "--steps",
                "5",
                "--out",
                str(log),
            ]
        )
    assert "k=99" in capsys.readouterr().err
