"""The documentation runs as written.

Every fenced ``console`` / ``bash`` block of README.md and docs/*.md is a shell example:
in ``console`` blocks the ``$ `` lines (with ``\\`` continuations) are commands and the other lines
their output; in ``bash`` blocks every non-comment line is a command. The blocks of one document
run in order in one fresh working directory (so later blocks see what earlier ones wrote, and
shell variables carry over), with the venv's ``vsae`` and ``python`` first on PATH, offline.
A command whose shown output has an ``error: ...`` line must exit with status 2 and print exactly
one line on stderr; every other command must exit 0 (output is not compared byte for byte).

A block that needs a GPU, a hub download or more time than CI has is marked by an HTML comment
on the line before its fence, ``<!-- gpu -->`` or ``<!-- no-run: why -->``; it is not run, but
every ``vsae`` sub-command and flag it uses must exist (checked against the click commands,
i.e. ``--help``), and every ``make`` target must be in the Makefile. The same check runs on the
runnable blocks first, for a clear message. Untagged fences that show ``$ vsae`` commands fail:
tag them ``console`` so that they are run (or mark them).

A second test asserts that every option of every ``vsae`` command's ``--help`` appears in some
document, and every command's name after its group's (``vsae world info``).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = {"console", "bash", "sh", "shell"}
MARKER = re.compile(r"^<!--\s*(gpu|no-run)\b[^>]*-->\s*$")
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")
# Whole document run, at most; the suite's budget is < 15 min on 2 cores, these take ~1-2 min together.
DOC_TIMEOUT_S = 600


@dataclass
class Command:
    text: str  # one shell command (continuations joined)
    expect_error: bool = False  # its shown output has an `error:` line: exit 2, one stderr line


@dataclass
class Block:
    doc: Path
    line: int  # 1-based line of the opening fence
    lang: str
    marker: str | None  # "gpu" | "no-run" | None
    body: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        doc = self.doc.relative_to(ROOT) if self.doc.is_relative_to(ROOT) else self.doc
        return f"{doc}:{self.line}"

    @property
    def is_shell(self) -> bool:
        return self.lang in SHELL

    def commands(self) -> list[Command]:
        if self.lang == "console":
            return _console_commands(self.body)
        return [Command(c) for c in _join_continuations(_strip_comments(self.body))]


def parse_blocks(doc: Path) -> list[Block]:
    """The fenced blocks of a markdown file, with the marker comment on the line before each."""
    blocks: list[Block] = []
    lines = doc.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence = m.group(2)
        prev = next((ln for ln in reversed(lines[:i]) if ln.strip()), "")
        mk = MARKER.match(prev.strip())
        b = Block(doc, i + 1, m.group(3).lower(), mk.group(1) if mk else None)
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence[0] * len(fence)):
            b.body.append(lines[i])
            i += 1
        blocks.append(b)
        i += 1
    return blocks


def _strip_comments(lines: list[str]) -> list[str]:
    return [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def _join_continuations(lines: list[str]) -> list[str]:
    out: list[str] = []
    cur = ""
    for ln in lines:
        if ln.rstrip().endswith("\\"):
            cur += ln.rstrip()[:-1].strip() + " "
        else:
            out.append(cur + ln.strip())
            cur = ""
    if cur:
        out.append(cur)
    return out


def _console_commands(lines: list[str]) -> list[Command]:
    cmds: list[Command] = []
    i = 0
    while i < len(lines):
        ln = lines[i]
        if not ln.startswith("$ "):
            if cmds and ln.startswith("error:"):
                cmds[-1].expect_error = True
            i += 1
            continue
        text = ln[2:]
        while text.rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            text = text.rstrip()[:-1].rstrip() + " " + lines[i].strip()
        cmds.append(Command(text))
        i += 1
    return cmds


ALL_BLOCKS = [b for d in DOCS for b in parse_blocks(d)]


# ----------------------------------------------------------------- commands against --help
def _vsae_cli() -> click.Group:
    from vsae.cli import cli

    return cli


def _resolve(args: list[str]) -> tuple[list[str], click.Command, list[str]]:
    """(command path, click command, remaining args) for `vsae ARGS`."""
    cmd: click.Command = _vsae_cli()
    path: list[str] = []
    args = list(args)
    while isinstance(cmd, click.Group) and args and not args[0].startswith("-"):
        sub = cmd.get_command(click.Context(cmd), args[0])
        if sub is None:
            raise AssertionError(f"`vsae {' '.join([*path, args[0]])}`: no such command")
        path.append(args.pop(0))
        cmd = sub
    return path, cmd, args


def _params(cmd: click.Command) -> list[click.Parameter]:
    """The command's parameters; `vsae train` also every architecture's (parsed after the others)."""
    return getattr(cmd, "documented_params", lambda: cmd.params)()


def _options(cmd: click.Command) -> set[str]:
    names = {"--help", "-h"}
    for p in _params(cmd):
        if isinstance(p, click.Option):
            names.update(p.opts)
            names.update(p.secondary_opts)
    return names


def vsae_invocations(command: str) -> list[list[str]]:
    """The argument lists of every `vsae ...` / `-m vsae.cli ...` call in one shell command."""
    command = re.sub(r"(^|\s)#.*$", "", command)  # trailing comment
    command = command.replace("$(", " ").replace("`", " ")  # command substitutions
    try:
        toks = shlex.split(command)
    except ValueError:
        toks = command.split()
    out, cur = [], None
    for j, t in enumerate(toks):
        starts = t == "vsae" or t.endswith("/vsae") or (t == "vsae.cli" and j > 0 and toks[j - 1] == "-m")
        if starts:
            cur = []
            out.append(cur)
        elif cur is not None:
            if t in {"|", "&&", "||", ";", ">", "2>", ">>"} or t.startswith(("|", ";", ">")) or t == ")":
                cur = None
            else:
                cur.append(t.rstrip(");"))
                if t.endswith(";"):
                    cur = None
    return out


def check_against_help(block: Block, cmd: Command) -> None:
    for args in vsae_invocations(cmd.text):
        if not args or args[0] in {"--help", "-h", "--version"}:
            continue
        path, c, rest = _resolve(args)
        opts = _options(c)
        given = {a.split("=", 1)[0] for a in rest if a.startswith("-") and a != "-"}
        for flag in sorted(given, key=[a.split("=", 1)[0] for a in rest].index):
            assert flag in opts, f"{block.where}: `vsae {' '.join(path)}` has no option {flag} ({cmd.text})"
        if given & {"--help", "-h"} or "..." in rest:  # `...` stands for flags shown elsewhere
            continue
        for p in c.params:
            if isinstance(p, click.Option) and p.required and not given & set(p.opts):
                raise AssertionError(f"{block.where}: `vsae {' '.join(path)}` needs {p.opts[0]} ({cmd.text})")
    for m in re.finditer(r"(?:^|[;&|]\s*)make\s+([\w-]+)", cmd.text):
        targets = re.findall(r"^([\w-]+)\s*:", (ROOT / "Makefile").read_text(), re.M)
        assert m.group(1) in targets, f"{block.where}: Makefile has no target {m.group(1)!r}"


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.is_shell], ids=lambda b: b.where)
def test_shell_examples_use_real_commands_and_flags(block):
    for cmd in block.commands():
        check_against_help(block, cmd)


def test_command_examples_are_tagged_so_that_they_run():
    untagged = [
        b.where
        for b in ALL_BLOCKS
        if b.lang == "" and b.marker is None and any(ln.startswith("$ vsae") for ln in b.body)
    ]
    assert not untagged, f"tag these blocks ```console (or mark them <!-- no-run: why -->): {untagged}"


def test_parser_reads_console_bash_and_markers(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text(
        "intro\n```console\n$ vsae world export --out w \\\n    --n train=10\nwrote 10\n"
        "$ vsae store info nope\nerror: nope is not an activation store\n```\n"
        "<!-- gpu -->\n```bash\n# comment\nvsae train --acts a \\\n  --out r   # trailing\nmake demo\n```\n"
        "```python\nprint(1)\n```\n"
    )
    a, b, c = parse_blocks(doc)
    assert (a.lang, a.marker, b.lang, b.marker, c.lang) == ("console", None, "bash", "gpu", "python")
    ca = a.commands()
    assert [x.text for x in ca] == ["vsae world export --out w --n train=10", "vsae store info nope"]
    assert [x.expect_error for x in ca] == [False, True]
    assert [x.text.split()[:2] for x in b.commands()] == [["vsae", "train"], ["make", "demo"]]
    assert vsae_invocations("torchrun --nproc-per-node 4 -m vsae.cli train --acts a | tail") == [
        ["train", "--acts", "a"]
    ]
    check_against_help(b, b.commands()[1])
    with pytest.raises(AssertionError, match="has no option --store"):
        check_against_help(b, Command("vsae train --store s --out r"))
    with pytest.raises(AssertionError, match="needs --steps"):
        check_against_help(b, Command("vsae train --acts s --out r"))
    with pytest.raises(AssertionError, match="no such command"):
        check_against_help(b, Command("X=$(vsae wrld info)"))


# ----------------------------------------------------------------- running the documents
def _runnable(doc: Path) -> list[tuple[Block, Command]]:
    return [
        (b, c) for b in ALL_BLOCKS if b.doc == doc and b.is_shell and b.marker is None for c in b.commands()
    ]


def _script(cmds: list[tuple[Block, Command]], logdir: Path) -> str:
    lines = ["set -o pipefail"]
    for i, (_, c) in enumerate(cmds):
        want = 2 if c.expect_error else 0
        lines += [
            f"{{ {c.text}\n}} >{logdir}/{i}.out 2>{logdir}/{i}.err; rc=$?",
            f'echo $rc >{logdir}/{i}.rc; [ "$rc" -eq {want} ] || exit 99',
        ]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("doc", [d for d in DOCS if _runnable(d)], ids=lambda d: str(d.relative_to(ROOT)))
def test_document_runs_as_written(doc, tmp_path):
    cmds = _runnable(doc)
    for b, c in cmds:
        check_against_help(b, c)
    work, logs = tmp_path / "work", tmp_path / "logs"
    work.mkdir()
    logs.mkdir()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TQDM_DISABLE": "1",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }
    r = subprocess.run(
        ["bash", "-c", _script(cmds, logs)], cwd=work, env=env, timeout=DOC_TIMEOUT_S, capture_output=True
    )
    ran = sorted(int(p.stem) for p in logs.glob("*.rc"))
    if r.returncode != 0:
        i = ran[-1] if ran else 0
        b, c = cmds[i]
        rc = (logs / f"{i}.rc").read_text().strip() if ran else "?"
        err = (logs / f"{i}.err").read_text()[-1500:] if ran else r.stderr.decode()[-1500:]
        pytest.fail(f"{b.where}: `{c.text}` exited {rc} (wanted {2 if c.expect_error else 0}):\n{err}")
    assert ran == list(range(len(cmds)))
    for i, (b, c) in enumerate(cmds):
        if c.expect_error:
            err = [ln for ln in (logs / f"{i}.err").read_text().splitlines() if ln.strip()]
            assert len(err) == 1 and err[0].startswith("error: "), f"{b.where}: `{c.text}` printed {err}"


# ----------------------------------------------------------------- every --help option documented
def _all_commands(
    cmd: click.Command, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], click.Command]]:
    out = [(path, cmd)] if path else []
    if isinstance(cmd, click.Group):
        ctx = click.Context(cmd)
        for name in cmd.list_commands(ctx):
            out += _all_commands(cmd.get_command(ctx, name), (*path, name))
    return out


def test_every_help_option_and_command_is_documented():
    text = "\n".join(d.read_text() for d in DOCS)
    missing = []
    for path, cmd in _all_commands(_vsae_cli()):
        if cmd.hidden:
            continue
        if len(path) > 1 and not re.search(
            rf"vsae {re.escape(' '.join(path[:-1]))}\b[^\n]*\b{re.escape(path[-1])}\b", text
        ):
            missing.append(f"command `vsae {' '.join(path)}`")
        for p in _params(cmd):
            if not isinstance(p, click.Option) or p.hidden:
                continue
            names = [o for o in [*p.opts, *p.secondary_opts] if o.startswith("--") and o not in {"--help"}]
            if names and not any(re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", text) for o in names):
                missing.append(f"`vsae {' '.join(path)} {names[0]}`")
    assert not missing, "not mentioned in README.md or docs/*.md: " + ", ".join(missing)
