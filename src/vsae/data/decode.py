"""Safe image decoding: corrupt, truncated, non-image and decompression-bomb files become a reason.

Every image comes out as 8-bit RGB: CMYK, greyscale, palette and 16-bit modes are converted,
transparency is composited onto white, and EXIF orientation is applied.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".jfif"}
)


class DecodeError(Exception):
    """An image that cannot be used; the message is the reason recorded in the store manifest."""


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB (alpha composited onto white)."""
    if im.mode == "RGB":
        return im
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        a = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        im = Image.fromarray(np.clip(a / hi * 255.0, 0, 255).astype(np.uint8), "L")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return im.convert("RGB")


def load_image(path: str | os.PathLike, max_pixels: int | None = None) -> Image.Image:
    """Decode `path` to an RGB image or raise DecodeError with a short reason.

    `max_pixels`: images with more pixels are refused as decompression bombs (default: PIL's
    Image.MAX_IMAGE_PIXELS, about 89 M).
    """
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set; truncated images would pass silently")
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    try:
        if os.path.getsize(path) == 0:
            raise DecodeError("empty file")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if limit is not None and w * h > limit:
                    raise DecodeError(f"decompression bomb ({w}x{h} pixels > {limit})")
                im.load()
                im = ImageOps.exif_transpose(im) or im
                return to_rgb(im)
    except DecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DecodeError(f"decompression bomb ({str(e).split('.')[0]})") from None
    except UnidentifiedImageError:
        raise DecodeError("not an image (unidentified format)") from None
    except FileNotFoundError:
        raise DecodeError("file not found") from None
    except OSError as e:
        raise DecodeError(f"truncated or corrupt ({e})") from None
    except Exception as e:  # any decoder failure is a skipped image, never a crashed run
        raise DecodeError(f"unreadable ({type(e).__name__}: {e})") from None
