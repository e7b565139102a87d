"""Safe image decoding: corrupt, truncated, non-image and decompression-bomb files become a reason.

Every image comes out as 8-bit RGB: CMYK, greyscale, palette and 16-bit modes are converted,
transparency is composited onto white, and EXIF orientation is applied.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import warnings

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from vsae.errors import file_kind

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".jfif"}
)


# PIL opens only these raster formats: never its PostScript/EPS plugin (which runs Ghostscript),
# nor any other plugin a hostile file could select by its content whatever its extension.
RASTER_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF", "PPM")


class DecodeError(Exception):
    """An image that cannot be used; the message is the reason recorded in the store manifest."""


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB (alpha composited onto white)."""
    if im.mode == "RGB":
        return im
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        a = np.nan_to_num(np.asarray(im, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        im = Image.fromarray(np.clip(a * (255.0 / _white_level(im.mode, a)), 0, 255).astype(np.uint8), "L")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return im.convert("RGB")


def _white_level(mode: str, a: np.ndarray) -> float:
    """The value that maps to white: 1.0 for float images in [0, 1] (the usual convention), 255 for
    8-bit ranges, 65535 for 16-bit images, else the image's maximum (never divides floats by 65535)."""
    top = float(a.max()) if a.size else 0.0
    if mode.startswith("I;16"):
        return 65535.0
    if mode == "F" and top <= 1.0:
        return 1.0
    if top <= 255.0:
        return 255.0
    if mode == "I" and top <= 65535.0:
        return 65535.0
    return top


def _check_regular(path: str | os.PathLike) -> None:
    """Refuse anything but a readable regular file before opening it: a FIFO or a symlink to a
    device such as /dev/zero would block or never end; the reason names what the path is."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DecodeError("dangling symlink" if os.path.islink(path) else "file not found") from None
    except PermissionError:
        raise DecodeError("permission denied") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise DecodeError("symlink loop") from None
        raise DecodeError(f"cannot stat ({e.strerror})") from None
    if stat.S_ISDIR(st.st_mode):  # a folder the source could not list (see sources._tree_images)
        if not os.access(path, os.R_OK | os.X_OK):
            raise DecodeError("permission denied (a folder whose images cannot be listed)")
        raise DecodeError("a directory, not an image")
    if not stat.S_ISREG(st.st_mode):
        raise DecodeError(f"not a regular file but {file_kind(st.st_mode)}")
    if st.st_size == 0:
        raise DecodeError("empty file")


def load_image(path: str | os.PathLike, max_pixels: int | None = None) -> Image.Image:
    """Decode `path` to an RGB image or raise DecodeError with a short reason.

    `max_pixels`: images with more pixels are refused as decompression bombs (default: PIL's
    Image.MAX_IMAGE_PIXELS, about 89 M).
    """
    return _decode(path, max_pixels)


def decode_bytes(data: bytes | None, max_pixels: int | None = None) -> Image.Image:
    """Decode an encoded image held in memory (a tar member, a dataset cell) like `load_image`:
    an RGB image, or DecodeError with the reason (None or b"": "empty image")."""
    if not data:
        raise DecodeError("empty image (no bytes)")
    return _decode(io.BytesIO(data), max_pixels)


def _decode(fp: str | os.PathLike | io.BytesIO, max_pixels: int | None) -> Image.Image:
    """The one decoder of `load_image` and `decode_bytes` (a path is vetted first: `_check_regular`)."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set; truncated images would pass silently")
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    try:
        if not isinstance(fp, io.BytesIO):
            _check_regular(fp)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp, formats=RASTER_FORMATS) as im:
                w, h = im.size
                if limit is not None and w * h > limit:
                    raise DecodeError(f"decompression bomb ({w}x{h} pixels > {limit})")
                im.load()
                return to_rgb(ImageOps.exif_transpose(im) or im)
    except DecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DecodeError(f"decompression bomb ({str(e).split('.')[0]})") from None
    except UnidentifiedImageError:
        raise DecodeError("not an image (unidentified format)") from None
    except FileNotFoundError:
        raise DecodeError("file not found") from None
    except PermissionError:
        raise DecodeError("permission denied") from None
    except OSError as e:
        raise DecodeError(f"truncated or corrupt ({e})") from None
    except Exception as e:  # any decoder failure is a skipped image, never a crashed run
        raise DecodeError(f"unreadable ({type(e).__name__}: {e})") from None
