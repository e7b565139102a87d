"""Writers of good and bad image files for tests: noise images, corrupt files of every kind, odd modes."""

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def noise(seed: int, size: tuple[int, int] = (40, 48)) -> Image.Image:
    """A seeded RGB noise image of `size` (height, width)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8))


def png_bomb(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )
    return path


def truncated_jpeg(path: Path) -> Path:
    noise(1, (64, 64)).save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def bad_files(folder: Path) -> dict[str, str]:
    """Write one file per failure kind into `folder`; name -> expected reason prefix."""
    folder.mkdir(parents=True, exist_ok=True)
    truncated_jpeg(folder / "truncated.jpg")
    (folder / "text.png").write_text("this is not an image")
    (folder / "empty.jpg").write_bytes(b"")
    png_bomb(folder / "bomb.png")
    return {
        "truncated.jpg": "truncated or corrupt",
        "text.png": "not an image",
        "empty.jpg": "empty file",
        "bomb.png": "decompression bomb",
    }


def odd_modes(folder: Path) -> list[str]:
    """CMYK JPEG, RGBA / greyscale / palette / 16-bit PNGs that must decode to RGB."""
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("CMYK", (20, 20), (0, 255, 255, 0)).save(folder / "cmyk.jpg")
    rgba = Image.new("RGBA", (20, 20), (255, 0, 0, 0))
    rgba.save(folder / "rgba.png")
    Image.new("L", (20, 20), 77).save(folder / "grey.png")
    noise(3, (20, 20)).convert("P").save(folder / "palette.png")
    Image.fromarray(np.full((20, 20), 65535, np.uint16)).save(folder / "grey16.png")
    return ["cmyk.jpg", "rgba.png", "grey.png", "palette.png", "grey16.png"]


def image_bytes(path: Path) -> bytes:
    """The file's bytes as they are (corrupt files stay corrupt in every form)."""
    return Path(path).read_bytes()


def write_hf(items: list[str], labels: list[int], classes: list[str], out: str | Path) -> Path:
    """The images at `items` as a Hugging Face dataset saved to `out` (an Image column holding each
    file's bytes, a ClassLabel column), in the same order. Needs `datasets` (the `data` extra)."""
    import datasets  # optional dependency: only the hf: tests and benches write datasets

    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(classes))})
    cells = [{"bytes": image_bytes(Path(p)), "path": None} for p in items]
    datasets.Dataset.from_dict({"image": cells, "label": list(labels)}, features=feats).save_to_disk(str(out))
    return Path(out)


def write_hf_parquet(
    items: list[str], labels: list[int], classes: list[str], out: str | Path, per_shard: int
) -> Path:
    """The images at `items` as a Parquet dataset directory (``data/train-<i>-of-<n>.parquet``, one
    file per `per_shard` rows: the shards of ``load_dataset(out, streaming=True)``), in the same
    order, with an Image and a ClassLabel column. Needs `datasets` (the `data` extra)."""
    import datasets  # optional dependency: only the hf tests and benches write datasets

    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(classes))})
    cells = [{"bytes": image_bytes(Path(p)), "path": None} for p in items]
    ds = datasets.Dataset.from_dict({"image": cells, "label": list(labels)}, features=feats)
    n = max(1, -(-len(items) // per_shard))
    (Path(out) / "data").mkdir(parents=True, exist_ok=True)
    for s in range(n):
        part = ds.select(range(s * per_shard, min(len(items), (s + 1) * per_shard)))
        part.to_parquet(str(Path(out) / "data" / f"train-{s:05d}-of-{n:05d}.parquet"))
    return Path(out)


def write_wds(items: list[str], labels: list[int], out_dir: str | Path, per_shard: int) -> str:
    """The images at `items` as WebDataset tar shards of `per_shard` samples (``<key>.<ext>`` and
    ``<key>.cls``), in the same order; returns the brace pattern of the shards."""
    import io
    import tarfile

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_shards = max(1, -(-len(items) // per_shard))
    for s in range(n_shards):
        with tarfile.open(out_dir / f"shard-{s:06d}.tar", "w") as tf:
            for i in range(s * per_shard, min(len(items), (s + 1) * per_shard)):
                ext = Path(items[i]).suffix.lstrip(".").lower() or "bin"
                for name, data in (
                    (f"{i:08d}.{ext}", image_bytes(Path(items[i]))),
                    (f"{i:08d}.cls", str(labels[i]).encode()),
                ):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
    return str(out_dir / f"shard-{{{0:06d}..{n_shards - 1:06d}}}.tar")
