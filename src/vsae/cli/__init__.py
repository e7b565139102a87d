"""The `vsae` command. Every sub-command lives in its own module and is a thin call into the library.

Sub-commands are imported lazily so that `vsae --help` is fast and one broken optional
dependency cannot break unrelated commands.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

import click

from vsae import __version__
from vsae.errors import VsaeError

# name -> "module:attribute" of a click command or group.
COMMANDS: dict[str, str] = {
    "extract": "vsae.cli.extract:extract",
    "extract-mllm": "vsae.cli.extract_mllm:extract_mllm",
    "store": "vsae.cli.store:store",
    "train": "vsae.cli.train:train",
    "encode": "vsae.cli.encode:encode",
    "convert": "vsae.cli.convert:convert",
    "sae": "vsae.cli.sae:sae",
    "push": "vsae.cli.push:push",
    "compare": "vsae.cli.compare:compare",
    "eval": "vsae.cli.eval:eval_group",
    "world": "vsae.cli.world:world",
    "demo": "vsae.cli.demo:demo",
    "steer": "vsae.cli.steer:steer",
    "serve": "vsae.cli.serve:serve",
}

HELP = {
    "extract": "Extract activations of a model at a hook point into a store.",
    "extract-mllm": "Extract a LLaVA language model's activations at image and caption tokens (one store).",
    "store": "Inspect and verify activation stores.",
    "train": "Train sparse autoencoders on an activation store.",
    "encode": "Write the SAE latents of a store as a new (sparse) store.",
    "convert": "Convert another library's SAE (dictionary_learning, saev, sparsify, ...) to a vsae SAE.",
    "sae": "Known public vision SAEs (`vsae sae list`).",
    "push": "Upload an SAE run to the Hugging Face hub with a generated model card.",
    "compare": "Compare SAEs: Hungarian-matched decoder cosines, activation correlations, seed stability.",
    "eval": "Evaluation metrics: recon, ms, top-images, uniqueness, hierarchy, probe, ood, names.",
    "world": "The embedded shapes world and its tiny models.",
    "demo": "Run the whole pipeline on the embedded shapes world and write a report.",
    "steer": "Steer with SAE latents: a multimodal LLM (mllm) or a text-to-image model (diffusion).",
    "serve": "Browse SAE latents in a local web app (table, latent pages, uploads, steering).",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [n for n in COMMANDS if _available(n)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS or not _available(name):
            return None
        mod, attr = COMMANDS[name].split(":")
        return getattr(importlib.import_module(mod), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(n, HELP.get(n, "")) for n in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _available(name: str) -> bool:
    mod = COMMANDS[name].split(":")[0]
    return importlib.util.find_spec(mod) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vsae")
def cli() -> None:
    """vsae: train sparse autoencoders on vision-model activations, evaluate and steer with them."""


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one line on stderr and exit status 2."""
    # vsae shows its own progress; transformers' per-load bars and advice would only be noise.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if not sys.stderr.isatty():  # logs to a file: a progress line every 10 s, not every 0.1 s
        os.environ.setdefault("TQDM_MININTERVAL", "10")
    try:
        cli.main(args=argv, prog_name="vsae", standalone_mode=False)
    except VsaeError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except OSError as e:  # a path that cannot be read or written: say which, without a traceback
        where = f" ({e.filename})" if e.filename else ""
        click.echo(
            f"error: {e.strerror or e}{where}; check the path, its permissions and free disk space", err=True
        )
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as e:  # one line, like every other user error (not click's 3-line usage)
        cmd = e.ctx.command_path if e.ctx is not None else "vsae"
        click.echo(f"error: {' '.join(e.format_message().split()).rstrip('.')}; see `{cmd} --help`", err=True)
        sys.exit(2)
    except click.ClickException as e:
        click.echo(f"error: {' '.join(e.format_message().split())}", err=True)
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
