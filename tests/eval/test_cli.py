"""End to end: images -> tiny CLIP -> stores (vsae extract) -> SAE -> every `vsae eval` command,
each checked against the metric functions applied directly to the same arrays."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vsae.cli import main
from vsae.errors import VsaeError
from vsae.eval.monosemanticity import monosemanticity_score
from vsae.eval.write_json import jsonable

CLASSES = [
    "00000_Animalia_Chordata_Aves",
    "00001_Animalia_Chordata_Mammalia",
    "00002_Plantae_Tracheophyta_Rosa",
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from vsae.extract import ExtractConfig, extract
    from vsae.models.tiny_models import build_tiny
    from vsae.sae import SAEConfig, build, save

    root = tmp_path_factory.mktemp("evalcli")
    rng = np.random.default_rng(0)
    for c, name in enumerate(CLASSES):
        (root / "imgs" / name).mkdir(parents=True)
        for i in range(6):
            a = rng.integers(0, 80, (32, 32, 3), dtype=np.uint8)
            a[..., c] += 150
            Image.fromarray(a).save(root / "imgs" / name / f"{i}.png")
    model = build_tiny("clip", root / "clip")
    common = dict(model=str(model), data=str(root / "imgs"), dtype="float32", progress=False, batch_size=8)
    extract(ExtractConfig(hooks=("resid.1",), tokens="all", out=str(root / "acts"), **common))
    extract(ExtractConfig(hooks=("embed",), tokens="cls", out=str(root / "emb"), **common))
    sae = build(SAEConfig(arch="matryoshka", d_in=32, d_sae=64, k=6, groups=(0.25, 0.75)), seed=0)
    save(sae, root / "sae")
    (root / "words.txt").write_text("bird\nmammal\nrose\ncar\n")
    return root


def run(args, capsys):
    main(args)
    return capsys.readouterr().out


def _pooled_latents(world):
    from vsae.sae import load
    from vsae.store import ActivationStore

    s = ActivationStore.open(world / "acts")
    x = s[0 : len(s)]
    img = s.image_index
    with torch.no_grad():
        z = load(world / "sae").encode(x).numpy().astype(np.float64)
    ids = np.unique(img)
    return (
        np.stack([z[img == i].mean(0) for i in ids]),
        np.stack([x.numpy()[img == i].mean(0) for i in ids]),
        ids,
    )


def test_recon_with_splice(world, tmp_path, capsys):
    from vsae.sae import load
    from vsae.store import ActivationStore

    out = run(
        [
            "eval",
            "recon",
            "--acts",
            str(world / "acts"),
            "--sae",
            str(world / "sae"),
            "--out",
            str(tmp_path),
            "--model",
            str(world / "clip"),
            "--data",
            str(world / "imgs"),
            "--n-images",
            "6",
            "--quiet",
        ],
        capsys,
    )
    res = json.loads((tmp_path / "recon.json").read_text())
    s = ActivationStore.open(world / "acts")
    x = s[0 : len(s)].double()
    sae = load(world / "sae")
    with torch.no_grad():
        xh = sae.decode(sae.encode(x.float())).double()
    assert res["mse"] == pytest.approx(float(((x - xh) ** 2).sum(1).mean() / 32), rel=1e-5)
    assert res["fvu"] == pytest.approx(float(((x - xh) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()), rel=1e-5)
    assert res["l0"] <= 6 and res["n_rows"] == len(s) == 18 * 17
    assert res["splice"]["n_images"] == 6 and -1 <= res["splice"]["embedding_cosine_mean"] <= 1
    assert set(res["splice"]["zero_shot"]) >= {"accuracy_original", "accuracy_spliced"}
    assert (tmp_path / "firing_frequency.png").stat().st_size > 0 and '"fvu"' in out


def test_ms_sae_and_raw_match_direct(world, tmp_path, capsys):
    from vsae.store import ActivationStore

    out = run(
        [
            "eval",
            "ms",
            "--acts",
            str(world / "acts"),
            "--sae",
            str(world / "sae"),
            "--embeddings",
            str(world / "emb"),
            "--out",
            str(tmp_path),
            "--quiet",
        ],
        capsys,
    )
    res = json.loads((tmp_path / "ms.json").read_text())
    z, xr, ids = _pooled_latents(world)
    e = ActivationStore.open(world / "emb")[0:18].numpy()
    for key, acts in (("sae", z), ("raw", xr)):
        ref = monosemanticity_score(acts, e).numpy()
        assert res[key]["mean"] == pytest.approx(np.nanmean(ref), rel=1e-4)
        assert res[key]["n_dead"] == int(np.isnan(ref).sum()) or res[key]["n_nan_not_dead"] > 0
        assert res[key]["pooling"] == "mean"
    assert (tmp_path / "ms_histogram.png").is_file() and "per-image activation: mean" in out
    # embeddings computed (and cached as a store) by the same model give the same scores
    run(
        [
            "eval",
            "ms",
            "--acts",
            str(world / "acts"),
            "--sae",
            str(world / "sae"),
            "--embed-model",
            str(world / "clip"),
            "--out",
            str(tmp_path / "m"),
            "--quiet",
        ],
        capsys,
    )
    res_m = json.loads((tmp_path / "m" / "ms.json").read_text())
    assert res_m["sae"]["mean"] == pytest.approx(res["sae"]["mean"], rel=1e-6)
    assert (tmp_path / "m" / "similarity-embeddings" / "manifest.json").is_file()
    # the same embeddings from a .npy file; and one with the wrong row count
    np.save(tmp_path / "e.npy", e)
    run(
        [
            "eval",
            "ms",
            "--acts",
            str(world / "acts"),
            "--sae",
            str(world / "sae"),
            "--no-raw",
            "--embeddings",
            str(tmp_path / "e.npy"),
            "--out",
            str(tmp_path / "b"),
            "--quiet",
            "--pooling",
            "cls",
        ],
        capsys,
    )
    assert json.loads((tmp_path / "b" / "ms.json").read_text())["sae"]["pooling"] == "cls"
    np.save(tmp_path / "bad.npy", e[:10])
    with pytest.raises(SystemExit) as ex:
        main(
            [
                "eval",
                "ms",
                "--acts",
                str(world / "acts"),
                "--sae",
                str(world / "sae"),
                "--embeddings",
                str(tmp_path / "bad.npy"),
                "--out",
                str(tmp_path / "c"),
                "--quiet",
            ]
        )
    err = capsys.readouterr().err
    assert ex.value.code == 2 and err.count("\n") == 1 and "10 rows" in err and "18 images" in err


def test_top_images_uniqueness_hierarchy_names(world, tmp_path, capsys):
    from vsae.eval.topimages import jaccard_pair_counts, top_images

    run(
        [
            "eval",
            "top-images",
            "--acts",
            str(world / "acts"),
            "--sae",
            str(world / "sae"),
            "-k",
            "4",
            "--out",
            str(tmp_path),
            "--quiet",
        ],
        capsys,
    )
    z, _, ids = _pooled_latents(world)
    ref = top_images(z, k=4)
    from vsae.eval.commands import load_top_images

    got = load_top_images(tmp_path)
    nz = ref.values_Fk > 0  # latents stream as CSR: implicit zeros are padding (-1), not candidates
    np.testing.assert_array_equal(got.indices_Fk[nz], ids[ref.indices_Fk[nz]])
    assert (got.indices_Fk[~nz] == -1).all()
    np.testing.assert_allclose(got.values_Fk, ref.values_Fk, rtol=1e-5)
    run(["eval", "uniqueness", "--top-images", str(tmp_path), "--out", str(tmp_path)], capsys)
    u = json.loads((tmp_path / "uniqueness.json").read_text())
    assert u["pairs_above"] == jaccard_pair_counts(ref)["pairs_above"]
    out = run(
        [
            "eval",
            "hierarchy",
            "--top-images",
            str(tmp_path),
            "--table",
            str(world / "acts"),
            "--sae",
            str(world / "sae"),
            "--out",
            str(tmp_path),
        ],
        capsys,
    )
    h = json.loads((tmp_path / "hierarchy.json").read_text())
    assert [g["latents"] for g in h["depth_per_group"]] == [[0, 16], [16, 64]]
    assert "project definition" in h["ontology"]["definition"] and "depth_per_group" in out
    assert (tmp_path / "depth_per_group.png").is_file()
    (tmp_path / "tax.json").write_text(json.dumps({CLASSES[0]: ["a", "b"]}))
    with pytest.raises(SystemExit):
        main(
            [
                "eval",
                "hierarchy",
                "--top-images",
                str(tmp_path),
                "--table",
                str(world / "acts"),
                "--taxonomy",
                str(tmp_path / "tax.json"),
                "--out",
                str(tmp_path),
            ]
        )
    err = capsys.readouterr().err
    assert "missing from the taxonomy" in err and "tax.json" in err and err.count("\n") == 1
    run(
        [
            "eval",
            "names",
            "--top-images",
            str(tmp_path),
            "--image-embeddings",
            str(world / "emb"),
            "--words",
            str(world / "words.txt"),
            "--text-model",
            str(world / "clip"),
            "--table",
            str(world / "acts"),
            "--out",
            str(tmp_path),
        ],
        capsys,
    )
    n = json.loads((tmp_path / "names.json").read_text())
    assert len(n["names"]) == 64 and set(x for x in n["names"] if x) <= {"bird", "mammal", "rose", "car"}
    # no attributes.json for these images: the per-class count only, not called agreement
    assert n["agreement"] is None and n["class_match"]["n_named"] == sum(x is not None for x in n["names"])


def test_probe_ood_and_width_mismatch(world, tmp_path, capsys):
    from vsae.sae import SAEConfig, build, save

    run(
        [
            "eval",
            "probe",
            "--train",
            str(world / "acts"),
            "--eval",
            f"test={world / 'acts'}",
            "--sae",
            str(world / "sae"),
            "--out",
            str(tmp_path),
            "--max-iter",
            "200",
        ],
        capsys,
    )
    p = json.loads((tmp_path / "probe.json").read_text())
    assert (
        set(p["accuracy"]) == {"raw", "sae"} and p["accuracy"]["raw"]["test"] == p["accuracy"]["raw"]["train"]
    )
    run(
        [
            "eval",
            "ood",
            "--in",
            str(world / "acts"),
            "--ood",
            f"same={world / 'acts'}",
            "--sae",
            str(world / "sae"),
            "--out",
            str(tmp_path),
        ],
        capsys,
    )
    o = json.loads((tmp_path / "ood.json").read_text())
    assert o["splits"]["same"]["recon_error"]["auroc"] == pytest.approx(0.5)
    assert (tmp_path / "roc.png").is_file()
    save(build(SAEConfig(arch="topk", d_in=16, d_sae=32, k=2)), tmp_path / "small")
    with pytest.raises(SystemExit):
        main(
            [
                "eval",
                "recon",
                "--acts",
                str(world / "acts"),
                "--sae",
                str(tmp_path / "small"),
                "--out",
                str(tmp_path),
            ]
        )
    err = capsys.readouterr().err
    assert "d=32" in err and "d_in=16" in err and err.count("\n") == 1


def test_recon_max_rows_and_splice_images_span_a_class_sorted_store(world, tmp_path, capsys):
    """The store and the image folder are in class order: `--max-rows` and `--n-images` must sample
    across all of it (the first 51 rows / 6 images are images of the first class only)."""
    from vsae.eval.sampling import spread_sample
    from vsae.sae import load
    from vsae.store import ActivationStore

    run(
        [
            "eval",
            "recon",
            "--acts",
            str(world / "acts"),
            "--sae",
            str(world / "sae"),
            "--out",
            str(tmp_path),
            "--max-rows",
            "51",
            "--model",
            str(world / "clip"),
            "--data",
            str(world / "imgs"),
            "--n-images",
            "6",
            "--quiet",
        ],
        capsys,
    )
    res = json.loads((tmp_path / "recon.json").read_text())
    s = ActivationStore.open(world / "acts")
    rows = spread_sample(len(s), 51, 0)
    x = s[0 : len(s)].double()[torch.from_numpy(rows)]
    sae = load(world / "sae")
    with torch.no_grad():
        xh = sae.decode(sae.encode(x.float())).double()
    assert res["n_rows"] == 51 and res["rows"]["of"] == len(s) and "seeded" in res["rows"]["method"]
    assert res["fvu"] == pytest.approx(float(((x - xh) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()), rel=1e-5)
    assert np.unique(s.labels[rows]).size == 3 and np.unique(s.labels[:51]).size == 1
    sp = res["splice"]
    assert sp["n_images"] == 6 and sp["images"]["of"] == 18 and sp["images"]["classes_covered"] == 3


@pytest.fixture(scope="module")
def colour_store(world, tmp_path_factory):
    """A store of 12 images in colour class folders (blue, green, red), DATA/attributes.json (colour
    = folder, shape chosen per image) and the image index of each (colour, shape, number)."""
    from vsae.data import load_table
    from vsae.extract import ExtractConfig, extract

    root = tmp_path_factory.mktemp("colours")
    rng = np.random.default_rng(1)
    for name in ("blue", "green", "red"):
        (root / "imgs" / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
                root / "imgs" / name / f"{i}.png"
            )
    extract(
        ExtractConfig(
            model=str(world / "clip"),
            data=str(root / "imgs"),
            hooks=("embed",),
            tokens="cls",
            out=str(root / "store"),
            dtype="float32",
            progress=False,
            batch_size=8,
        )
    )
    items = load_table(root / "store")["items"]
    # images 0, 1 of each colour are squares, 2, 3 triangles
    recs = [
        {"path": it, "colour": it.split("/")[0], "shape": "square" if it[-5] in "01" else "triangle", "x": 3}
        for it in items
    ]
    (root / "imgs" / "attributes.json").write_text(json.dumps(recs))  # where a world export has it
    where = {(r["colour"], r["shape"], r["path"][-5]): i for i, r in enumerate(recs)}
    return root, where


def _write_top(path, top_Fk):
    from safetensors.numpy import save_file

    path.mkdir(parents=True, exist_ok=True)
    idx = np.asarray(top_Fk, dtype=np.int64)
    save_file(
        {"image_index": idx, "values": np.ones(idx.shape, dtype=np.float64)},
        str(path / "top_images.safetensors"),
        metadata={"k": str(idx.shape[1]), "pooling": "cls", "n_images": "12"},
    )


def test_names_agreement_needs_the_purest_attribute(colour_store, tmp_path, capsys):
    """Both latents are named "red" and most of the top images of each are red (the class), so the
    old per-class rule counted both as agreeing; latent 0's top images are all squares (purer than
    red), so only latent 1 agrees."""
    root, at = colour_store
    top = [
        [
            at["red", "square", "0"],
            at["red", "square", "1"],
            at["green", "square", "0"],
            at["blue", "square", "1"],
        ],
        [
            at["red", "square", "0"],
            at["red", "square", "1"],
            at["red", "triangle", "2"],
            at["red", "triangle", "3"],
        ],
    ]
    _write_top(tmp_path / "top", top)
    words = ["red", "green", "blue", "square", "triangle", "car"]
    (tmp_path / "words.txt").write_text("\n".join(words) + "\n")
    # the tiny CLIP's embeddings of the images; word embeddings that make both latents "red":
    # "red" is the sum of the latents' mean unit embeddings, every other word its negative
    from vsae.store import ActivationStore

    s = ActivationStore.open(root / "store")
    e = s[0 : len(s)].numpy().astype(np.float64)[np.argsort(s.image_index)]
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    m = e[np.array(top)].mean(axis=1)
    red = (m / np.linalg.norm(m, axis=1, keepdims=True)).sum(0)
    np.save(tmp_path / "words.npy", np.stack([red] + [-red] * (len(words) - 1)))
    out = run(
        [
            "eval",
            "names",
            "--top-images",
            str(tmp_path / "top"),
            "--image-embeddings",
            str(root / "store"),
            "--words",
            str(tmp_path / "words.txt"),
            "--word-embeddings",
            str(tmp_path / "words.npy"),
            "--table",
            str(root / "store"),
            "--out",
            str(tmp_path),
        ],
        capsys,
    )
    n = json.loads((tmp_path / "names.json").read_text())
    assert n["names"] == ["red", "red"]
    ag = n["agreement"]
    assert ag["agreement"] == 0.5  # the old per-class rule: 1.0
    assert (ag["n_named"], ag["n_agree"], ag["n_not_purest"], ag["n_wrong_value"]) == (2, 1, 1, 0)
    assert ag["agreement"] == 0.5 and ag["verdict_F"] == ["not_purest", "agree"]
    assert ag["attributes"] == ["colour", "shape"]  # string fields only; "x" is no attribute
    # the per-class count is still there, under another name
    assert n["class_match"]["n_agree"] == 2 and "not the attribute agreement" in n["class_match"]["rule"]
    assert json.loads(out)["agreement"]["agreement"] == 0.5
    # a name that is no attribute value is named but cannot agree; embeddings as a file, one row
    # per image of the table
    np.save(tmp_path / "words.npy", np.eye(len(words), 8))
    np.save(tmp_path / "images.npy", np.tile(np.eye(1, 8, 5), (12, 1)))  # every image reads "car"
    args = ["eval", "names", "--top-images", str(tmp_path / "top"), "--image-embeddings"]
    rest = ["--words", str(tmp_path / "words.txt"), "--word-embeddings", str(tmp_path / "words.npy")]
    tail = ["--table", str(root / "store"), "--attributes", str(root / "imgs" / "attributes.json")]
    run([*args, str(tmp_path / "images.npy"), *rest, *tail, "--out", str(tmp_path)], capsys)
    ag = json.loads((tmp_path / "names.json").read_text())["agreement"]
    assert (ag["n_named"], ag["n_agree"], ag["n_no_attribute"]) == (2, 0, 2)


def test_hierarchy_in_the_world_colour_taxonomy(colour_store, tmp_path, capsys):
    """Depth in colour family -> colour: four reds share the colour (2); red, green, blue, red
    have pairs of depth 0 (different families), 2 (red, red) and 1 (green, blue: both cool),
    mean 3/6 -> rounded 1, majority 0."""
    root, at = colour_store
    top = [
        [
            at["red", "square", "0"],
            at["red", "square", "1"],
            at["red", "triangle", "2"],
            at["red", "triangle", "3"],
        ],
        [
            at["red", "square", "0"],
            at["green", "square", "0"],
            at["blue", "square", "1"],
            at["red", "triangle", "2"],
        ],
    ]
    _write_top(tmp_path / "top", top)
    base = ["eval", "hierarchy", "--top-images", str(tmp_path / "top"), "--table", str(root / "store")]
    out = run(
        [
            *base,
            "--taxonomy",
            "world-colour",
            "--out",
            str(tmp_path),
        ],
        capsys,
    )
    h = json.loads((tmp_path / "hierarchy.json").read_text())
    assert h["taxonomy"] == "world colour taxonomy" and json.loads(out)["taxonomy"] == h["taxonomy"]
    assert h["latent_depth_rounded"] == [2, 1] and h["latent_depth_majority"] == [2, 0]
    assert h["depth_per_group"][0]["n_scored"] == 2
    # no attributes file: one line, exit 2
    with pytest.raises(SystemExit) as e:
        main(
            [
                *base,
                "--taxonomy",
                "world-colour",
                "--attributes",
                str(tmp_path / "no.json"),
                "--out",
                str(tmp_path),
            ]
        )
    err = capsys.readouterr().err
    assert e.value.code == 2 and "attributes.json" in err and err.count("\n") == 1


def test_world_colour_reaches_a_fresh_cli_through_its_entry_point(colour_store, tmp_path):
    """No command imports `vsae.world` for its side effects (issue 24): in a fresh process,
    `vsae eval hierarchy --taxonomy world-colour` finds the taxonomy through the entry point
    ``vsae.attribute_taxonomies: world-colour = vsae.world.taxonomy``, which imports the world."""
    import subprocess
    import sys

    root, at = colour_store
    _write_top(tmp_path / "top", [[at["red", "square", "0"], at["red", "triangle", "2"]]])
    code = (
        "import sys; from vsae.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
        "    print('exit', e.code, file=sys.stderr); assert not e.code\n"
    )
    args = ["eval", "hierarchy", "--top-images", str(tmp_path / "top"), "--table", str(root / "store")]
    r = subprocess.run(
        [sys.executable, "-c", code, *args, "--taxonomy", "world-colour", "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    h = json.loads((tmp_path / "o" / "hierarchy.json").read_text())
    assert h["taxonomy"] == "world colour taxonomy" and h["latent_depth_rounded"] == [2]
    cli = Path(__file__).parents[2] / "src" / "vsae" / "cli"
    assert not [f.name for f in cli.glob("*.py") if "import vsae.world  # noqa" in f.read_text()]


def test_hierarchy_by_a_registered_attribute_taxonomy(colour_store, tmp_path, request):
    """An attribute taxonomy registered by name (as `vsae.world` registers world-colour) is all
    `run_hierarchy` needs: here the shape attribute in a toy two-level tree."""
    from vsae.eval import class_hierarchy as tx
    from vsae.eval.commands import run_hierarchy

    root, at = colour_store
    toy = tx.AttributeTaxonomy(
        "shape", {"square": ["polygon", "square"], "triangle": ["polygon", "triangle"]}, "toy"
    )
    tx.register_attribute_taxonomy("test-toy-shapes", toy)
    request.addfinalizer(lambda: tx.ATTRIBUTE_TAXONOMIES.unregister("test-toy-shapes"))
    request.addfinalizer(lambda: tx.ATTRIBUTE_TAXONOMIES.unregister("test-toy-sizes"))
    with pytest.raises(VsaeError, match="attribute taxonomy 'test-toy-shapes' is already registered"):
        tx.register_attribute_taxonomy(
            "test-toy-shapes", tx.AttributeTaxonomy("shape", {"a": ["a"]}, "other")
        )
    assert tx.attribute_taxonomy("no-such-taxonomy.json") is None  # a file name, read as a file
    squares = [at[c, "square", n] for c, n in (("red", "0"), ("green", "1"), ("blue", "0"), ("red", "1"))]
    mixed = [
        at["red", "square", "0"],
        at["red", "triangle", "2"],
        at["blue", "square", "1"],
        at["green", "triangle", "3"],
    ]
    _write_top(tmp_path / "top", [squares, mixed])
    rep = run_hierarchy(tmp_path / "top", root / "store", tmp_path, taxonomy="test-toy-shapes")
    assert rep.taxonomy == "toy" and rep.n_classes == 2
    # all squares: depth 2 (same leaf); two squares + two triangles: pairs of depth 2, 2 and four
    # of depth 1 (same family) -> mean 8/6 -> rounded 1
    assert rep.latent_depth_rounded.tolist() == [2, 1]
    assert json.loads((tmp_path / "hierarchy.json").read_text()) == json.loads(
        json.dumps(jsonable(rep.to_json()))
    )
    with pytest.raises(VsaeError, match="no 'size' attribute"):
        tx.register_attribute_taxonomy("test-toy-sizes", tx.AttributeTaxonomy("size", {"big": ["big"]}, "t"))
        run_hierarchy(tmp_path / "top", root / "store", tmp_path, taxonomy="test-toy-sizes")


def test_reports_are_what_the_commands_write(world, tmp_path):
    """Every `run_<command>` returns a typed report whose to_json() is the JSON file it wrote."""
    from vsae.eval import commands as p
    from vsae.eval.typed_results import MSReport, ReconReport, TopImagesReport, UniquenessReport

    def on_disk(name):
        return json.loads((tmp_path / f"{name}.json").read_text())

    def same(rep, name):
        assert on_disk(name) == json.loads(json.dumps(jsonable(rep.to_json()))), name

    rec = p.run_recon(world / "acts", world / "sae", tmp_path, progress=False)
    assert isinstance(rec, ReconReport) and rec.splice is None and "splice" not in on_disk("recon")
    same(rec, "recon")
    assert rec.recon.n_rows == 18 * 17 and on_disk("recon")["fvu"] == pytest.approx(rec.recon.fvu)
    ms = p.run_ms(world / "emb", tmp_path, acts=world / "acts", sae_path=world / "sae", progress=False)
    assert isinstance(ms, MSReport) and list(ms.kinds) == ["sae", "raw"]
    same(ms, "ms")
    top = p.run_top_images(tmp_path, world / "acts", world / "sae", k=4, progress=False)
    assert isinstance(top, TopImagesReport) and top.top.indices_Fk.shape == (64, 4)
    same(top, "top_images")
    uni = p.run_uniqueness(tmp_path, tmp_path)
    assert isinstance(uni, UniquenessReport)
    same(uni, "uniqueness")
    hier = p.run_hierarchy(tmp_path, world / "acts", tmp_path, inat=True, sae_path=world / "sae")
    assert len(hier.depth_per_group) == 2  # the Matryoshka SAE's two groups
    same(hier, "hierarchy")
    ood = p.run_ood(world / "acts", [("same", world / "acts")], world / "sae", tmp_path)
    assert ood.splits["same"]["recon_error"]["auroc"] == pytest.approx(0.5)  # a split against itself
    same(ood, "ood")
    names = p.run_names(
        tmp_path, world / "emb", world / "words.txt", tmp_path, text_model=str(world / "clip")
    )
    assert not names.checked and "class_match" not in on_disk("names")
    same(names, "names")


def test_splice_is_passed_in_not_imported(world, tmp_path):
    """`run_recon` takes the splice as a callable (vsae.eval never imports vsae.steer): it is called
    with the loaded SAE and the store's hook, and its result is recon.json's "splice"."""
    from vsae.eval.commands import run_recon

    seen = []

    def splice(sae, hook):
        seen.append((sae.cfg.d_sae, hook))
        return {"probe": 1.5}

    rep = run_recon(world / "acts", world / "sae", tmp_path, progress=False, splice=splice)
    assert seen == [(64, "resid.1")] and rep.splice == {"probe": 1.5}
    assert json.loads((tmp_path / "recon.json").read_text())["splice"] == {"probe": 1.5}
