"""`vsae encode`, `extract`, `extract-mllm`, `world build`, `eval *`, `serve` and `steer *` take their options from config
dataclasses (`vsae.cli.from_config`): every generated option's default, choices and help are the
field's, the parsed values build the config, and the configs load no torch (or numpy)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from typing import Any, Literal, get_args, get_origin, get_type_hints

import click
import pytest

from vsae.cli.encode import encode
from vsae.cli.eval import eval_group
from vsae.cli.extract import extract
from vsae.cli.extract_mllm import extract_mllm
from vsae.cli.from_config import field_docs, flag_of, pick
from vsae.cli.serve import serve
from vsae.cli.steer import steer
from vsae.cli.world import world
from vsae.eval.eval_config import (
    MsConfig,
    NamesConfig,
    PoolingConfig,
    ProbeConfig,
    ReconConfig,
    SharedConfig,
    TopImagesConfig,
)
from vsae.experiments.diffusion_steering.diffusion_config import DiffusionSteerConfig
from vsae.experiments.mllm_steering.mllm_config import SteerConfig
from vsae.extract.settings import ExtractConfig, MllmExtractConfig
from vsae.sae.sae_config import EncodeConfig
from vsae.serve.serve_config import ServeConfig
from vsae.steer.steer_config import SamplerConfig
from vsae.world.build_config import WorldBuildConfig

# command -> (its configs, their fields that are no generated option: absent, or written by hand
# (`--shard I/N`; `eval shared --attributes` is a file, not SharedConfig.attributes))
CASES: dict[str, tuple[click.Command, tuple[type, ...], set[str]]] = {
    "encode": (encode, (EncodeConfig,), set()),
    "extract": (extract, (ExtractConfig,), {"shard", "max_pixels", "progress"}),
    "extract-mllm": (extract_mllm, (MllmExtractConfig,), {"max_pixels", "progress"}),
    "serve": (serve, (ServeConfig,), set()),
    "steer mllm": (steer.commands["mllm"], (SteerConfig,), set()),
    # --tokens takes "all" or positions, --prompts a file: written by hand
    "steer diffusion": (
        steer.commands["diffusion"],
        (DiffusionSteerConfig,),
        {"tokens", "prompts", "min_change", "n_captions"},
    ),
    "world build": (world.commands["build"], (WorldBuildConfig,), set()),
    "eval recon": (eval_group.commands["recon"], (ReconConfig,), set()),
    "eval ms": (eval_group.commands["ms"], (MsConfig, PoolingConfig), set()),
    "eval top-images": (eval_group.commands["top-images"], (TopImagesConfig, PoolingConfig), set()),
    "eval names": (eval_group.commands["names"], (NamesConfig,), set()),
    "eval probe": (eval_group.commands["probe"], (ProbeConfig, PoolingConfig), {"standardize", "seed"}),
    "eval ood": (eval_group.commands["ood"], (PoolingConfig,), set()),
    "eval shared": (eval_group.commands["shared"], (SharedConfig,), {"attributes", "n_draws", "bins"}),
}


def _literal(hint: Any) -> tuple[str, ...] | None:
    for t in (hint, *get_args(hint)):
        if get_origin(t) is Literal:
            return tuple(str(a) for a in get_args(t))
    return None


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_option_is_its_config_field(name):
    cmd, classes, not_generated = CASES[name]
    params = {p.name: p for p in cmd.params if isinstance(p, click.Option)}
    for cls in classes:
        hints, docs = get_type_hints(cls), field_docs(cls)
        for f in dataclasses.fields(cls):
            if f.name in not_generated:
                continue
            p = params[f.name]  # every other field is an option, under the field's name
            assert flag_of(f) in p.opts, (name, f.name, p.opts)
            if f.default is dataclasses.MISSING:
                assert p.required, (name, f.name)
            elif not p.multiple:  # an empty comma list is unset (None): the field's () applies
                assert p.default == f.default or (p.default is None and f.default == ()), (name, f.name)
            choices = _literal(hints[f.name])
            if choices is not None:
                assert isinstance(p.type, click.Choice) and tuple(p.type.choices) == choices, (name, f.name)
            # the help is the docstring entry (first letter upper-cased, `` -> `)
            first = docs[f.name].replace("``", "`").split()[1:4]
            assert " ".join(first) in " ".join(p.help.split()), (name, f.name, p.help)


def _parse(cmd: click.Command, args: list[str]) -> dict[str, Any]:
    with cmd.make_context(cmd.name, args) as ctx:
        return dict(ctx.params)


def test_extract_options_parse_into_the_config():
    kw = _parse(
        extract,
        ["--model", "m", "--hook", "resid.1", "--hook", "embed", "--data", "d", "--out", "o"]
        + ["--tower", "text", "--max-images-order", "first", "--dtype", "bfloat16", "--num-workers", "0"],
    )
    shard, quiet = kw.pop("shard"), kw.pop("quiet")
    assert (shard, quiet) == (None, False)
    cfg = ExtractConfig(**kw)
    assert cfg.hooks == ("resid.1", "embed")  # --hook repeats, one store each
    assert (cfg.tower, cfg.max_images_order, cfg.dtype, cfg.num_workers) == ("text", "first", "bfloat16", 0)
    defaults = ExtractConfig(model="m", hooks=("resid.1", "embed"), data="d", out="o")
    assert dataclasses.replace(
        cfg, tower=None, max_images_order="sample", dtype="float16", num_workers=2
    ) == (defaults)
    for bad in (["--tower", "audio"], ["--max-images-order", "last"], ["--dtype", "int8"]):
        with pytest.raises(click.BadParameter):
            _parse(extract, ["--model", "m", "--hook", "h", "--data", "d", "--out", "o", *bad])
    with pytest.raises(click.MissingParameter):  # --hook has no default
        _parse(extract, ["--model", "m", "--data", "d", "--out", "o"])


def test_extract_mllm_and_world_build_parse_into_their_configs():
    kw = _parse(
        extract_mllm, ["--model", "m", "--hook", "resid.0", "--data", "d", "--out", "o", "--no-balance"]
    )
    kw.pop("quiet")
    cfg = MllmExtractConfig(**kw)
    assert cfg.hooks == ("resid.0",) and cfg.balance is False and cfg.question == "Describe this image."
    build = world.commands["build"]
    assert WorldBuildConfig(**_parse(build, [])) == WorldBuildConfig()
    cfg_w = WorldBuildConfig(**_parse(build, ["--only", "llava", "--out", "x", "--sae-steps", "5"]))
    assert (cfg_w.models, cfg_w.out_dir, cfg_w.sae_steps, cfg_w.llava_steps) == (("llava",), "x", 5, None)
    assert WorldBuildConfig().models == ("clip", "simenc", "llava", "diffusion")


def test_top_images_keeps_its_short_flag():
    p = next(p for p in eval_group.commands["top-images"].params if p.name == "k")
    assert sorted(p.opts) == ["--k", "-k"]


def test_library_modules_reexport_the_configs():
    import vsae.data.subset
    import vsae.eval.probe
    import vsae.eval.readers
    import vsae.eval.shared
    import vsae.extract
    import vsae.extract.mllm_tokens
    import vsae.store.dtypes
    from vsae.eval.eval_config import POOLINGS, Pooling
    from vsae.store.validate import StorageDtype

    assert vsae.extract.ExtractConfig is ExtractConfig
    assert vsae.extract.mllm_tokens.MllmExtractConfig is MllmExtractConfig
    assert vsae.eval.probe.ProbeConfig is ProbeConfig and vsae.eval.shared.SharedConfig is SharedConfig
    assert vsae.eval.readers.POOLINGS == POOLINGS == get_args(Pooling)
    assert get_args(StorageDtype) == vsae.store.dtypes.STORAGE_DTYPES
    assert vsae.data.subset.ORDERS == ("sample", "first")


def test_configs_and_help_load_no_torch_or_numpy():
    code = (
        "import sys, json\n"
        "import vsae.extract.settings, vsae.eval.eval_config, vsae.serve.serve_config, vsae.steer.steer_config\n"
        "import vsae.experiments.mllm_steering.mllm_config\n"
        "import vsae.cli.extract, vsae.cli.extract_mllm, vsae.cli.eval, vsae.cli.serve, vsae.cli.steer\n"
        "print(json.dumps(sorted(m for m in ('torch', 'numpy', 'scipy', 'sklearn', 'starlette') if m in sys.modules)))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(r.stdout) == []


def test_steer_latents_and_sweep_parse_into_the_configs():
    kw = _parse(steer.commands["mllm"], ["--out", "o", "--latents", "0,7", "--op", "add"])
    cfg = SteerConfig(**pick(SteerConfig, kw))
    assert cfg.latents == (0, 7) and cfg.op == "add"  # latent 0 is an index, not a count
    kw = _parse(steer.commands["mllm"], ["--out", "o"])
    assert SteerConfig(**pick(SteerConfig, kw)) == SteerConfig()
    d = steer.commands["diffusion"]
    kw = _parse(d, ["--out", "o", "--sweep", "1,2.5", "--latents", "3"])
    cfg_d = DiffusionSteerConfig(**pick(DiffusionSteerConfig, kw))
    assert (cfg_d.sweep, cfg_d.latents) == ((1.0, 2.5), (3,))
    assert (
        DiffusionSteerConfig(**pick(DiffusionSteerConfig, _parse(d, ["--out", "o"])))
        == DiffusionSteerConfig()
    )
    # one set of sampling defaults, but the demo's 10 steps (issue 23: the CLI's defaults are the demo's)
    assert DiffusionSteerConfig().sampler == dataclasses.replace(SamplerConfig(), steps=10)


def test_steer_package_is_lazy_and_intervene_stays_the_function():
    code = (
        "import sys, json\n"
        "import vsae.steer.steer_config\n"
        "light = 'torch' not in sys.modules\n"
        "import vsae.steer.intervention\n"  # the submodule imported first must not shadow the function
        "from vsae.steer import intervene, LatentEdit\n"
        "print(json.dumps([light, callable(intervene), intervene is vsae.steer.intervention.intervene]))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(r.stdout) == [True, True, True]
