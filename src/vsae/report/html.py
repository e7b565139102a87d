"""A self-contained static HTML report: sections of text, tables, plots and image grids.

Everything (images included) is embedded as data URIs, so the file can be mailed or opened
offline; the page loads nothing from the network.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vsae.store.safe_io import atomic_write

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1180px;padding:24px;color:#1d2330;background:#fbfbfd}
h1{font-size:1.7em;margin-bottom:0}h2{border-bottom:2px solid #dde;padding-bottom:4px;margin-top:2em}
h3{margin-bottom:.3em}.sub{color:#667;margin-top:4px}
table{border-collapse:collapse;margin:10px 0;font-size:.92em}th,td{border:1px solid #ccd;padding:4px 9px;text-align:right}
th{background:#eef0f6}td.l,th.l{text-align:left}
.ok{color:#127a2e;font-weight:600}.bad{color:#b3261e;font-weight:600}
.grid{display:flex;flex-wrap:wrap;gap:14px}.card{background:#fff;border:1px solid #dde;border-radius:6px;padding:8px;width:260px}
.card img{width:100%;image-rendering:pixelated}.card .cap{font-size:.85em;color:#334}
img.plot{max-width:560px;border:1px solid #eee;background:#fff;margin:4px}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:8px 12px}
code{background:#eef;padding:1px 4px;border-radius:3px}
"""


# Records on <body> how many images decoded, so a headless browser can check the page renders.
_LOAD_CHECK = (
    "<script>window.addEventListener('load',()=>{const im=[...document.images];"
    "document.body.dataset.images=im.length;"
    "document.body.dataset.imagesLoaded=im.filter(i=>i.complete&&i.naturalWidth>0).length;});</script>"
)


def png_data_uri(png: bytes) -> str:
    """A data: URI embedding PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode()


def pil_to_png(img: Image.Image) -> bytes:
    """PNG bytes of a PIL image."""
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def image_grid(
    images: Sequence[Image.Image | np.ndarray], cols: int = 4, scale: int = 2, pad: int = 2
) -> Image.Image:
    """Tile images (PIL or HxWx3 uint8) into one grid image, upscaled `scale`x with nearest neighbour."""
    ims = [im if isinstance(im, Image.Image) else Image.fromarray(np.asarray(im, np.uint8)) for im in images]
    if not ims:
        return Image.new("RGB", (8, 8), "white")
    w, h = ims[0].size
    w, h = w * scale, h * scale
    rows = math.ceil(len(ims) / cols)
    grid = Image.new("RGB", (cols * (w + pad) + pad, rows * (h + pad) + pad), "white")
    for i, im in enumerate(ims):
        r, c = divmod(i, cols)
        grid.paste(
            im.convert("RGB").resize((w, h), Image.Resampling.NEAREST),
            (pad + c * (w + pad), pad + r * (h + pad)),
        )
    return grid


def _fmt(v: Any) -> str:
    if isinstance(v, float | np.floating):
        v = float(v)
        if math.isnan(v):
            return "–"
        return f"{v:.3f}" if abs(v) < 1000 else f"{v:,.0f}"
    return html.escape(str(v))


@dataclass
class Report:
    """Accumulates report blocks in order; `save(path)` writes one HTML file."""

    title: str
    subtitle: str = ""
    blocks: list[str] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def text(self, text: str, cls: str = "") -> None:
        c = f' class="{cls}"' if cls else ""
        self.blocks.append(f"<p{c}>{html.escape(text)}</p>")

    def verdict(self, claim: str, holds: bool, detail: str) -> None:
        """One finding of the papers and whether it holds here, with the numbers."""
        mark = '<span class="ok">holds</span>' if holds else '<span class="bad">does not hold</span>'
        self.blocks.append(f"<p>{html.escape(claim)}: {mark} — {html.escape(detail)}</p>")

    def table(
        self, rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, left: Sequence[str] = ()
    ) -> None:
        if not rows:
            self.text("(no rows)")
            return
        cols = list(columns or dict.fromkeys(k for r in rows for k in r))
        head = "".join(f'<th class="{"l" if c in left else ""}">{html.escape(c)}</th>' for c in cols)
        body = "".join(
            "<tr>"
            + "".join(f'<td class="{"l" if c in left else ""}">{_fmt(r.get(c, ""))}</td>' for c in cols)
            + "</tr>"
            for r in rows
        )
        self.blocks.append(f"<table><tr>{head}</tr>{body}</table>")

    def plot(self, png_file: str | Path, alt: str) -> None:
        """Embed a PNG file (e.g. one written by `vsae.eval.plots`)."""
        png = Path(png_file).read_bytes()
        self.blocks.append(f'<img class="plot" alt="{html.escape(alt)}" src="{png_data_uri(png)}">')

    def cards(self, cards: Sequence[tuple[Image.Image, str]]) -> None:
        """A row of captioned image cards (e.g. top-image grids of latents)."""
        inner = "".join(
            f'<div class="card"><img alt="{html.escape(cap)}" src="{png_data_uri(pil_to_png(im))}">'
            f'<div class="cap">{html.escape(cap)}</div></div>'
            for im, cap in cards
        )
        self.blocks.append(f'<div class="grid">{inner}</div>')

    def render(self) -> str:
        sub = f'<p class="sub">{html.escape(self.subtitle)}</p>' if self.subtitle else ""
        return (
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1>{sub}{''.join(self.blocks)}{_LOAD_CHECK}</body></html>"
        )

    def save(self, path: str | Path) -> Path:
        return atomic_write(Path(path), self.render())  # never through a link (vsae.store.safe_io)
