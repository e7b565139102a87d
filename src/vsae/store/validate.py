"""Distrust of what a store's files claim: manifest schema, shard paths, shard headers, checksums.

A manifest is input like any other: its shard names must be plain file names inside the store
directory that resolve to regular files (no absolute paths, no `..`, no symlinks out of the store,
no FIFOs or devices, which would make a reader hang), and its row counts and width must agree with
the `.npy` headers. Every violation is a one-line `VsaeError`.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from vsae.errors import VsaeError, file_kind

if TYPE_CHECKING:
    import numpy as np

# The storage dtypes of a store, defined here and not in vsae.store.dtypes (which imports torch and
# re-exports these): reading a manifest (`vsae store info`) and the configs must not import torch.
StorageDtype = Literal["float16", "bfloat16", "float32"]
STORAGE_DTYPES: tuple[str, ...] = get_args(StorageDtype)

# The arrays of one shard per store format.
SHARD_KEYS = {"dense": ("acts", "rows"), "sparse": ("indptr", "indices", "values", "rows")}
# The numpy dtype (native byte order) on disk of each storage dtype (numpy has no bfloat16: its
# bit patterns are stored as uint16) and of the index arrays, as the writer saves them.
ON_DISK = {"float16": "float16", "bfloat16": "uint16", "float32": "float32"}
INDEX_DTYPES = {"rows": "int64", "indptr": "int64", "indices": "int32"}
# A claim beyond this is not a store vsae wrote (2**40 rows of even 1 value would be 2 TB).
MAX_ROWS = 1 << 40


def _int(v: Any, lo: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= MAX_ROWS


def _bad(f: Path, what: str) -> VsaeError:
    return VsaeError(f"manifest {f} is damaged ({what}); re-run the extraction or `vsae store check`")


def validate_manifest(m: Any, f: Path) -> None:
    """Refuse a manifest whose fields have the wrong types or impossible values (one line)."""
    if not isinstance(m, dict) or "format" not in m or "shards" not in m:
        raise VsaeError(f"{f} is not a vsae store manifest; check the path")
    if m["format"] not in SHARD_KEYS:
        raise _bad(f, f"unknown format {str(m['format'])[:40]!r}")
    if not _int(m.get("d"), 1):
        raise _bad(f, f"width d is {str(m.get('d'))[:40]!r}, not a positive integer")
    if m.get("dtype") not in STORAGE_DTYPES:
        raise _bad(f, f"dtype {str(m.get('dtype'))[:40]!r} is not one of {', '.join(STORAGE_DTYPES)}")
    if not isinstance(m["shards"], list):
        raise _bad(f, "'shards' is not a list")
    skipped = m.get("skipped", [])
    if not isinstance(skipped, list) or not all(
        isinstance(x, dict) and isinstance(x.get("reason"), str) for x in skipped
    ):
        raise _bad(f, "'skipped' is not a list of {image, path, reason}")
    if not isinstance(m.get("complete"), bool):
        raise _bad(f, "'complete' is not true/false")
    if not _int(m.get("next_image")):
        raise _bad(f, "'next_image' is not a non-negative integer")
    part = m.get("part", [0, 1])
    if not (isinstance(part, list) and len(part) == 2 and all(_int(p) for p in part) and part[0] < part[1]):
        raise _bad(f, f"'part' is {str(part)[:40]}, not [I, N] with 0 <= I < N")
    rng = m.get("image_range", [0, None])
    if not (
        isinstance(rng, list)
        and len(rng) == 2
        and _int(rng[0])
        and (rng[1] is None or (_int(rng[1]) and rng[0] <= rng[1]))
    ):
        raise _bad(f, f"'image_range' is {str(rng)[:40]}, not [lo, hi] with 0 <= lo <= hi")
    keys = SHARD_KEYS[m["format"]]
    for j, s in enumerate(m["shards"]):
        where = f"shard {j}"
        if not isinstance(s, dict):
            raise _bad(f, f"{where} is not an object")
        if not _int(s.get("rows")):
            raise _bad(f, f"{where} claims {str(s.get('rows'))[:40]} rows")
        files, sums = s.get("files"), s.get("sha256")
        if not isinstance(files, dict) or not isinstance(sums, dict) or set(files) != set(keys):
            raise _bad(f, f"{where} must list the files {', '.join(keys)} with their sha256")
        for k in keys:
            if not isinstance(files[k], str) or not isinstance(sums.get(k), str):
                raise _bad(f, f"{where} file {k} has no name or no sha256")
        im = s.get("images")
        if not (isinstance(im, list) and len(im) == 2 and all(_int(v) for v in im) and im[0] <= im[1]):
            raise _bad(f, f"{where} image range {str(im)[:40]} is not [lo, hi]")


def shard_path(store: Path, name: str) -> Path:
    """The path of shard file `name` of `store`, refusing anything that is not a regular file inside it."""
    if not name or name in (".", "..") or Path(name).name != name or "\\" in name or "\0" in name:
        raise VsaeError(
            f"store {store} names shard file {name[:80]!r}, which is not a plain file name inside the "
            "store; the manifest is damaged or hostile: re-extract"
        )
    p = store / name
    try:
        st = os.stat(p)  # follows symlinks: the target is what would be read
    except FileNotFoundError:
        kind = "a dangling symlink" if os.path.islink(p) else "missing"
        raise VsaeError(f"shard file {p} is {kind}; run `vsae store check {store}`") from None
    except OSError as e:
        raise VsaeError(
            f"shard file {p} cannot be opened ({e.strerror}); run `vsae store check {store}`"
        ) from None
    if os.path.islink(p):
        target = p.resolve()
        if target.parent != store.resolve():
            raise VsaeError(
                f"shard file {p} is a symlink out of the store (to {str(target)[:80]}); "
                "vsae only reads files inside the store directory"
            )
    if not stat.S_ISREG(st.st_mode):
        raise VsaeError(
            f"shard file {p} is {file_kind(st.st_mode)}, not a regular file; the store is damaged: re-extract"
        )
    return p


def expected_shape(key: str, rows: int, d: int) -> tuple[int, ...] | None:
    """The shape shard array `key` must have (None: only its length is known, CSR values/indices)."""
    if key == "rows":
        return (rows, 2)
    if key == "acts":
        return (rows, d)
    if key == "indptr":
        return (rows + 1,)
    return None


def check_header(a: np.ndarray, f: Path, key: str, rows: int, d: int, dtype: str) -> None:
    """Refuse a shard array whose dtype or shape disagrees with the manifest (its storage dtype
    `dtype`, row count and width): a float16 file under a bfloat16 manifest would be read as
    other numbers, an int8 file as garbage."""
    want_dtype = INDEX_DTYPES.get(key) or ON_DISK[dtype]
    if a.dtype.str != np_dtype_str(want_dtype):
        bits = " (bfloat16 bit patterns)" if want_dtype != dtype and key not in INDEX_DTYPES else ""
        raise VsaeError(
            f"shard file {f} holds {a.dtype.str} ({a.dtype.name}) values but the manifest's "
            f"{dtype} store needs {want_dtype}{bits} for {key}; the store is damaged: re-extract"
        )
    want = expected_shape(key, rows, d)
    if want is not None and tuple(a.shape) != want:
        raise VsaeError(
            f"shard file {f} holds shape {tuple(a.shape)} but the manifest says {want}; "
            f"the store is damaged: run `vsae store check {f.parent}`"
        )
    if want is None and a.ndim != 1:
        raise VsaeError(f"shard file {f} holds shape {tuple(a.shape)}, expected one dimension; re-extract")


def np_dtype_str(name: str) -> str:
    """The array-protocol string (byte order, kind, size) of numpy dtype `name` in native order."""
    import numpy as np  # lazy: see count_nonfinite_rows

    return np.dtype(name).str


def check_sparse_lengths(indptr: np.ndarray, n_indices: int, n_values: int, f: Path) -> None:
    """Refuse a CSR shard whose index pointer, indices and values disagree (one line)."""
    end = int(indptr[-1]) if len(indptr) else 0
    bad_ptr = len(indptr) == 0 or int(indptr[0]) != 0 or bool((indptr[1:] < indptr[:-1]).any())
    if n_values != n_indices or end != n_indices or bad_ptr:
        raise VsaeError(
            f"sparse shard {f} is inconsistent: index pointer from {int(indptr[0]) if len(indptr) else '?'} "
            f"to {end}, {n_indices} indices, {n_values} values; the store is damaged: re-encode"
        )


def check_sparse_indices(idx: np.ndarray, d: int, f: Path) -> None:
    """Refuse latent indices outside 0..d-1 (they would index past the row)."""
    if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= d):
        raise VsaeError(
            f"sparse shard {f} holds latent indices {int(idx.min())}..{int(idx.max())} but the store "
            f"has d={d} latents; the store is damaged: re-encode"
        )


def check_sparse_values(val: np.ndarray, f: Path) -> None:
    """Refuse NaN or Inf latent values (every statistic over them would be NaN)."""
    import numpy as np  # lazy: see count_nonfinite_rows

    bad = int((~np.isfinite(val)).sum())
    if bad:
        raise VsaeError(
            f"sparse shard {f} (latent values) holds {bad} NaN or Inf values; the store is damaged: re-encode"
        )


def sha256_regular(path: Path, chunk: int = 1 << 22) -> str:
    """sha256 of a file already checked to be regular (see `shard_path`)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def count_nonfinite_rows(a: np.ndarray, dtype: str, chunk_rows: int = 65536) -> int:
    """Rows (dense [N, d]) or values (1-D) of the on-disk array `a` holding NaN or Inf.

    Works on the stored bits, without converting to float32 (10x faster): float16/float32 with
    `np.isfinite`, bfloat16 (stored as uint16 patterns) by an all-ones exponent.
    """
    import numpy as np  # lazy: `vsae store info` reads manifests through this module without numpy

    n = 0
    for i in range(0, len(a), chunk_rows):
        x = np.asarray(a[i : i + chunk_rows])
        bad = (x & 0x7F80) == 0x7F80 if dtype == "bfloat16" else ~np.isfinite(x)
        n += int(bad.any(1).sum()) if bad.ndim == 2 else int(bad.sum())
    return n
