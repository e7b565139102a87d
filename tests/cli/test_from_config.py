"""Options generated from config dataclasses (`vsae.cli.from_config`): names, types, defaults,
choices and help come from the dataclass, and `vsae train`'s defaults are the configs' own."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import click
import pytest
from click.testing import CliRunner

from vsae.cli.from_config import config_options, field_docs, flag_of, pick
from vsae.errors import VsaeError
from vsae.sae.sae_config import SAEConfig
from vsae.sae.sweep import SweepAxes
from vsae.train.train_config import TrainConfig


@dataclass(frozen=True)
class Toy:
    """A toy config.

    Attributes
    ----------
    steps: how many steps.
    mode: which mode; ``fast`` skips
        the slow part.
    ratio, extra: two floats documented together.
    sizes: a comma list.
    verbose: say more.
    keep: keep it.
    limit: at most this many (unset: no limit).
    blob: not an option.
    """

    steps: int
    mode: Literal["fast", "slow"] = "slow"
    ratio: float = field(default=0.5, metadata={"flag": "--r"})
    extra: float = 2.0
    sizes: tuple[int, ...] = (1, 2)
    verbose: bool = False
    keep: bool = True
    limit: int | None = None
    blob: dict[str, int] = field(default_factory=dict)


def _cmd() -> click.Command:
    @click.command()
    @config_options(Toy, exclude=("blob",))
    def cmd(**kw: object) -> None:
        click.echo(repr(Toy(**pick(Toy, kw))))

    return cmd


def test_field_docs_reads_the_attributes_section():
    d = field_docs(Toy)
    assert d["mode"] == "which mode; ``fast`` skips the slow part."  # continuation lines joined
    assert d["ratio"] == d["extra"] == "two floats documented together."
    assert set(d) == {f.name for f in dataclasses.fields(Toy)}


def test_generated_options_parse_into_the_dataclass():
    r = CliRunner().invoke(
        _cmd(), ["--steps", "3", "--mode", "fast", "--r", "0.25", "--sizes", "4,5", "--verbose"]
    )
    assert r.exit_code == 0, r.output
    assert r.output.strip() == repr(
        Toy(steps=3, mode="fast", ratio=0.25, sizes=(4, 5), verbose=True, keep=True, limit=None)
    )
    r = CliRunner().invoke(_cmd(), ["--steps", "1", "--no-keep", "--limit", "7"])
    assert "keep=False" in r.output and "limit=7" in r.output and "sizes=(1, 2)" in r.output
    assert CliRunner().invoke(_cmd(), ["--mode", "fast"]).exit_code == 2  # --steps has no default: required
    assert CliRunner().invoke(_cmd(), ["--steps", "1", "--mode", "medium"]).exit_code == 2  # Literal choice
    r = CliRunner().invoke(_cmd(), ["--steps", "1", "--sizes", "1,x"])
    assert isinstance(r.exception, VsaeError) and "--sizes must be a positive integer" in str(r.exception)
    h = CliRunner().invoke(_cmd(), ["--help"]).output
    assert "Which mode; `fast` skips the slow part." in " ".join(h.split())
    assert "[fast|slow]" in h and "--keep / --no-keep" in h and "--r FLOAT" in h


def test_a_field_without_a_docstring_entry_or_a_cli_form_is_refused():
    @dataclass
    class Bad:
        """No attributes section."""

        x: int = 1

    with pytest.raises(TypeError, match="no entry in its docstring"):
        config_options(Bad)
    with pytest.raises(TypeError, match="default_factory"):
        config_options(Toy, only=("blob",))(lambda **kw: None)


def test_vsae_train_defaults_and_choices_are_the_configs():
    from vsae.cli.train import arch_options, train
    from vsae.sae.arch_registry import arch_names, get_arch

    common = {p.name: p for p in train.params if isinstance(p, click.Option)}
    # each architecture's options are its config class's settings (vsae.cli.train.arch_options)
    for cls, opts in [
        *((c, common) for c in (SAEConfig, TrainConfig, SweepAxes)),
        *((get_arch(a).config, {p.name: p for p in arch_options(a)}) for a in arch_names()),
    ]:
        for f in dataclasses.fields(cls):
            if f.name not in opts:
                continue
            o = opts[f.name]
            assert flag_of(f) in o.opts
            if isinstance(f.default, tuple) or f.name == "k":  # comma lists (--groups, --expansion, --k)
                vals = f.default if isinstance(f.default, tuple) else (f.default,)
                assert o.default == ",".join(f"{v:g}" for v in vals)
            elif f.default is not dataclasses.MISSING:
                assert o.default == f.default, f.name
    opts = common
    assert set(opts) >= {"arch", "expansion", "dead_window_rows", "wandb_project", "precision"}
    assert not {"k", "l1_coeff"} & set(opts)  # architecture options: parsed with the architecture
    assert {p.name for p in arch_options("relu")} == {"l1_coeff"}
    assert {p.name for p in arch_options("topk")} == {"k", "aux_k", "aux_coeff"}
    assert list(opts["arch"].type.choices) == list(arch_names())
    assert list(opts["precision"].type.choices) == ["fp32", "tf32", "bf16"]
