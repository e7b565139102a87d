"""Safe writes: the one way vsae writes an output file, and the one lock on an output directory.

Every file a command writes (store shards and manifests, SAE checkpoints, eval JSON / PNG /
safetensors, training logs, the world export) goes through here:

- ``atomic_path(path)`` / ``atomic_write(path, data)``: a fresh temporary file beside ``path``
  (created with ``O_EXCL | O_NOFOLLOW``, so never through a link planted at the temporary name),
  written, fsynced, renamed over ``path``, the directory fsynced. Readers see the old file or the
  new one, never half. A symlink or a non-regular file (FIFO, directory) at ``path`` or at its
  temporary name is refused in one line: vsae never writes through a link.
- ``append_line(path, text)``: appends to a regular file only (``O_NOFOLLOW``; a FIFO is refused,
  never blocked on).
- ``output_lock(directory)``: an exclusive ``fcntl.flock`` on ``<directory>/.vsae.lock``; a second
  process writing the same output is refused in one line naming the holder's pid. The lock dies
  with its process (forked children, e.g. DataLoader workers, close their inherited copy).
"""

from __future__ import annotations

import errno
import fcntl
import functools
import inspect
import json
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar, cast

from vsae.errors import VsaeError, file_kind

LOCK_NAME = ".vsae.lock"
F = TypeVar("F", bound=Callable[..., Any])

# Lock file descriptors this process holds. A forked child (a DataLoader worker) would share the
# flock and keep it alive after this process is killed, so children close their copies at once.
_HELD: set[int] = set()


def _close_held_in_child() -> None:
    for fd in _HELD:
        with suppress(OSError):
            os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_close_held_in_child)


def fsync_dir(path: Path) -> None:
    """fsync a directory (makes a rename in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_output(path: str | os.PathLike[str]) -> None:
    """Refuse to replace ``path`` if it is a symlink or not a regular file (absent is fine)."""
    p = Path(path)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise VsaeError(
            f"output {p} is a symlink; vsae never writes through a link: remove it or use a new --out"
        )
    if not stat.S_ISREG(st.st_mode):
        raise VsaeError(
            f"output {p} is {file_kind(st.st_mode)}, not a regular file; remove it or use a new --out"
        )


def _fresh(tmp: Path) -> int:
    """Create ``tmp`` exclusively (a stale regular file from a killed run is removed first)."""
    check_output(tmp)
    with suppress(FileNotFoundError):
        os.unlink(tmp)  # a leftover of a killed run (never a link: checked above)
    try:
        return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except FileExistsError:  # something appeared between the check and the open
        raise VsaeError(
            f"{tmp} appeared while vsae was writing; is another process using this --out?"
        ) from None


@contextmanager
def atomic_path(path: str | os.PathLike[str], tag: str | None = None) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path`` for a writer that takes a file name (safetensors,
    matplotlib, PIL); on success it is fsynced and renamed over ``path``, on failure removed.
    ``tag`` makes the temporary name unique per writer when several processes write one directory."""
    p = Path(path)
    check_output(p)
    tmp = p.with_name(f"{p.name}.{tag}.tmp" if tag else f"{p.name}.tmp")
    os.close(_fresh(tmp))
    try:
        yield tmp
        check_output(tmp)  # the writer must have written our file, not swapped in a link
        fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        check_output(p)
        os.replace(tmp, p)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(p.parent)


def atomic_write(path: str | os.PathLike[str], data: bytes | str, tag: str | None = None) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename); returns ``path``."""
    p = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    with atomic_path(p, tag) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
    return p


def atomic_write_json(path: str | os.PathLike[str], obj: Any, tag: str | None = None, **dump: Any) -> Path:
    """``atomic_write`` of ``json.dumps(obj, indent=1, **dump)``."""
    return atomic_write(path, json.dumps(obj, **{"indent": 1, **dump}), tag)


def append_line(path: str | os.PathLike[str], text: str) -> None:
    """Append ``text`` and a newline to the regular file ``path`` (created if absent), never through a link."""
    p = Path(path)
    try:
        fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EMLINK):
            raise VsaeError(
                f"output {p} is a symlink; vsae never writes through a link: remove it or use a new --out"
            ) from None
        raise VsaeError(f"output {p} cannot be opened ({e.strerror}); remove it or use a new --out") from None
    with os.fdopen(fd, "a") as f:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise VsaeError(
                f"output {p} is {file_kind(mode)}, not a regular file; remove it or use a new --out"
            )
        f.write(text + "\n")


@contextmanager
def output_lock(directory: str | os.PathLike[str], name: str = LOCK_NAME) -> Iterator[Path]:
    """Hold an exclusive lock on the output ``directory`` (created if absent) while writing it.

    A second process (or a second lock in this one) on the same directory is refused at once with
    one line naming the holder's pid; the lock file is removed when the holder finishes, so a
    finished or killed run leaves nothing a rerun trips over (flock dies with its process). A
    directory this call created is removed again if nothing was written into it (a refused run).
    ``name``: the lock file's name (``vsae extract --shard I/N`` locks each part on its own)."""
    d = Path(directory)
    made: list[Path] = []  # the directories this call creates, innermost first
    for q in (d, *d.parents):
        if os.path.lexists(q):
            break
        made.append(q)
    d.mkdir(parents=True, exist_ok=True)
    p = d / name
    while True:
        check_output(p)
        try:
            fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        except OSError as e:
            raise VsaeError(
                f"cannot lock {d} ({e.strerror}); check the permissions or use a new --out"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise VsaeError(
                f"{d} is being written by another vsae process (pid {holder}); wait for it to finish "
                "or use another --out"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.lstat(p).st_ino
        except FileNotFoundError:
            same = False
        if same:  # else the previous holder removed the file between our open and our lock: retry
            break
        os.close(fd)
    _HELD.add(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield d
    finally:
        with suppress(OSError):
            os.unlink(p)
        _HELD.discard(fd)
        os.close(fd)
        for q in made:  # rmdir fails (and stops the cleanup) once a directory holds output
            try:
                q.rmdir()
            except OSError:
                break


def writes_to(param: str = "out") -> Callable[[F], F]:
    """Decorator: run the function holding ``output_lock`` on its argument ``param`` (a directory)."""

    def wrap(fn: F) -> F:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def locked(*args: Any, **kwargs: Any) -> Any:
            with output_lock(sig.bind(*args, **kwargs).arguments[param]):
                return fn(*args, **kwargs)

        return cast(F, locked)

    return wrap


def atomic_write_safetensors(
    path: str | os.PathLike[str], tensors: dict[str, Any], metadata: dict[str, str] | None = None
) -> Path:
    """numpy arrays as a .safetensors file written by ``atomic_write``, byte-identical for equal input.

    safetensors orders the header's metadata as a Rust HashMap does, which differs between
    processes; the header is re-serialised with sorted keys (the data and its offsets are unchanged),
    so a rerun writes the same bytes as the run it replaces."""
    from safetensors.numpy import save  # lazy: the manifest readers must not import it

    raw = save(tensors, metadata=metadata)
    n = int.from_bytes(raw[:8], "little")
    header = json.dumps(json.loads(raw[8 : 8 + n]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # safetensors pads the header to 8 bytes with spaces
    return atomic_write(path, len(header).to_bytes(8, "little") + header + raw[8 + n :])
