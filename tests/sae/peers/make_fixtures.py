"""Write the importer fixtures with the real peer libraries (run in bench/.venv, made by
bench/setup_peers.sh, which installs dictionary-learning 0.1.0, overcomplete 0.3.0 and saev 0.1.0):

    bench/.venv/bin/python tests/sae/peers/make_fixtures.py

For each library and SAE class: a small checkpoint written the way the library writes it
(dictionary_learning: ``torch.save(ae.state_dict(), "ae.pt")`` + ``config.json`` {"trainer": ...};
saev: ``saev.nn.dump``; overcomplete: ``torch.save(sae.state_dict())`` + the user's
``overcomplete.json``), with random non-trivial parameters, then the latents the library's own
loader and ``encode`` give on fixed inputs, in ``<name>.expected.safetensors`` (x, z).
tests/sae/test_importers.py checks vsae's import against them without the peer libraries.
sparsify (eai-sparsify 1.3.3) installs but its package import needs accelerate, schedulefree and
a working transformers/accelerate pair, and ViT-Prisma's PyPI release (vit-prisma 0.1.4) has no
``sae`` module: their fixtures are written by the test itself in the documented layout.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import json
import shutil
import sys
import types
from importlib.metadata import version
from pathlib import Path

import torch
from safetensors.torch import save_file

OUT = Path(__file__).parent / "fixtures"
D, F, K, N = 8, 32, 4, 24


def _stub(name: str) -> None:
    """An empty module for an import the code under test never uses (dictionary_learning's
    package __init__ imports nnsight, a CUDA stack; overcomplete's imports torchvision and timm
    for its model zoo): as bench/train.py does."""
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        n = ".".join(parts[:i])
        if n not in sys.modules:
            m = types.ModuleType(n)
            m.__spec__ = importlib.machinery.ModuleSpec(n, None)
            m.__path__ = []  # type: ignore[attr-defined]
            m.__getattr__ = lambda attr: object  # type: ignore[method-assign]
            sys.modules[n] = m


def _perturb(module: torch.nn.Module, gen: torch.Generator) -> None:
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen))
            if "bias" in name or name in ("b_dec", "b_enc"):
                p.mul_(0.5)


def _expected(name: str, x: torch.Tensor, z: torch.Tensor) -> None:
    save_file({"x": x.contiguous(), "z": z.detach().contiguous()}, str(OUT / f"{name}.expected.safetensors"))


def dictionary_learning(x: torch.Tensor, gen: torch.Generator) -> None:
    _stub("nnsight")
    from dictionary_learning.dictionary import AutoEncoder, JumpReluAutoEncoder
    from dictionary_learning.trainers.batch_top_k import BatchTopKSAE
    from dictionary_learning.trainers.matryoshka_batch_top_k import MatryoshkaBatchTopKSAE
    from dictionary_learning.trainers.top_k import AutoEncoderTopK

    def write(name, ae, trainer_class, loader, **extra):
        d = OUT / name
        d.mkdir(parents=True)
        torch.save({k: v.cpu() for k, v in ae.state_dict().items()}, d / "ae.pt")  # as training.py does
        cfg = {
            "dict_class": type(ae).__name__,
            "trainer_class": trainer_class,
            "activation_dim": D,
            "dict_size": F,
            "lm_name": "openai/clip-vit-base-patch32",
            "layer": 5,
            "submodule_name": "resid_post_layer_5",
            **extra,
        }
        (d / "config.json").write_text(json.dumps({"trainer": cfg, "buffer": {"d_submodule": D}}, indent=4))
        with torch.no_grad():
            _expected(name, x, loader(d / "ae.pt").encode(x))

    ae = AutoEncoder(D, F)
    _perturb(ae, gen)  # decoder columns not unit norm: from_pretrained normalises them
    write("dl_standard", ae, "StandardTrainerAprilUpdate", lambda p: AutoEncoder.from_pretrained(p))
    ae = AutoEncoderTopK(D, F, K)
    _perturb(ae, gen)
    write("dl_topk", ae, "TopKTrainer", lambda p: AutoEncoderTopK.from_pretrained(p), k=K)
    ae = BatchTopKSAE(D, F, K)
    _perturb(ae, gen)
    ae.threshold.fill_(0.35)
    write("dl_batchtopk", ae, "BatchTopKTrainer", lambda p: BatchTopKSAE.from_pretrained(p), k=K)
    ae = MatryoshkaBatchTopKSAE(D, F, K, group_sizes=[4, 4, 8, 16])
    _perturb(ae, gen)
    ae.threshold.fill_(0.3)
    write(
        "dl_matryoshka",
        ae,
        "MatryoshkaBatchTopKTrainer",
        lambda p: MatryoshkaBatchTopKSAE.from_pretrained(p),
        k=K,
        group_fractions=[0.125, 0.125, 0.25, 0.5],
    )
    ae = JumpReluAutoEncoder(D, F)
    _perturb(ae, gen)
    with torch.no_grad():
        ae.threshold.copy_(torch.rand(F, generator=gen) * 0.6)
    write("dl_jumprelu", ae, "JumpReluTrainer", lambda p: JumpReluAutoEncoder.from_pretrained(p))


def saev(x: torch.Tensor, gen: torch.Generator) -> None:
    import saev.config
    import saev.nn

    sae = saev.nn.SparseAutoencoder(saev.config.SparseAutoencoder(d_vit=D, exp_factor=F // D, seed=3))
    _perturb(sae, gen)
    d = OUT / "saev"
    d.mkdir(parents=True)
    saev.nn.dump(str(d / "sae.pt"), sae)
    with torch.no_grad():
        _, f_x, _ = saev.nn.load(str(d / "sae.pt"))(x)
    _expected("saev", x, f_x)


def overcomplete(x: torch.Tensor, gen: torch.Generator) -> None:
    for name in ("torchvision", "torchvision.transforms", "timm", "cv2", "skimage", "skimage.transform"):
        if importlib.util.find_spec(name.split(".")[0]) is None:
            _stub(name)
    from overcomplete.sae import SAE, BatchTopKSAE, JumpSAE, TopKSAE

    for name, sae, user_cfg in (
        ("oc_vanilla", SAE(D, F), {"sae": "SAE"}),
        ("oc_topk", TopKSAE(D, F, top_k=K), {"sae": "TopKSAE", "top_k": K}),
        ("oc_jump", JumpSAE(D, F), {"sae": "JumpSAE"}),
        ("oc_batchtopk", BatchTopKSAE(D, F, top_k=K * N), {"sae": "BatchTopKSAE", "top_k": K * N}),
    ):
        _perturb(sae, gen)
        if name == "oc_batchtopk":  # train-mode encodes set the running threshold the user records
            sae.train()
            for _ in range(3):
                sae.encode(torch.randn(N, D, generator=gen))
            user_cfg["threshold"] = float(sae.running_threshold)
        sae.eval()
        d = OUT / name
        d.mkdir(parents=True)
        torch.save(sae.state_dict(), d / "model.pt")
        (d / "overcomplete.json").write_text(json.dumps({**user_cfg, "weights": "model.pt"}, indent=1))
        with torch.no_grad():
            _, z = sae.encode(x)
        _expected(name, x, z)


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    gen = torch.Generator().manual_seed(25)
    torch.manual_seed(25)
    x = torch.randn(N, D, generator=gen)
    dictionary_learning(x, gen)
    saev(x, gen)
    overcomplete(x, gen)
    versions = {p: version(p) for p in ("dictionary-learning", "saev", "overcomplete", "torch")}
    (OUT / "VERSIONS.json").write_text(json.dumps(versions, indent=1) + "\n")
    print("fixtures written with", versions)


if __name__ == "__main__":
    main()
