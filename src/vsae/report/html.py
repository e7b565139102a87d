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
.ok{color:#127a2e;font-weight:600}.bad{color:#b3261e;font-weight:600}.warn{color:#8a5a00;font-weight:600}
.grid{display:flex;flex-wrap:wrap;gap:14px}.card{background:#fff;border:1px solid #dde;border-radius:6px;padding:8px;width:260px}
.card img{width:100%;image-rendering:pixelated}.card .cap{font-size:.85em;color:#334}
img.plot{max-width:560px;border:1px solid #eee;background:#fff;margin:4px}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:8px 12px}
code{background:#eef;padding:1px 4px;border-radius:3px}
.tw{overflow-x:auto;max-width:100%}.tw th{white-space:normal;vertical-align:bottom}
table.findings td{vertical-align:top}table.findings td.l{max-width:34em}
nav.toc ol{columns:2;margin:.4em 0}nav.toc{background:#fff;border:1px solid #dde;padding:6px 14px;border-radius:6px}
"""


# Records on <body> how many images decoded, so a headless browser can check the page renders.
_LOAD_CHECK = (
    "<script>window.addEventListener('load',()=>{const im=[...document.images];"
    "document.body.dataset.images=im.length;"
    "document.body.dataset.imagesLoaded=im.filter(i=>i.complete&&i.naturalWidth>0).length;});</script>"
)


_TOC = "<!-- contents -->"  # stands for the table of contents until the page is rendered


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


@dataclass(frozen=True)
class Link:
    """A table cell or line item that links somewhere (``href``: a relative path or ``#anchor``)."""

    text: str
    href: str


def slug(text: str) -> str:
    """An HTML id from a heading's text (lower case, runs of other characters as ``-``)."""
    out = "".join(c if c.isalnum() else "-" for c in text.lower())
    return "-".join(p for p in out.split("-") if p)[:60] or "section"


def _fmt(v: Any) -> str:
    if isinstance(v, Link):
        return f'<a href="{html.escape(v.href)}">{html.escape(v.text)}</a>'
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
    sections: list[tuple[str, str]] = field(default_factory=list)  # (id, text) of each h2

    def heading(self, text: str, level: int = 2, anchor: str | None = None) -> str:
        """A heading; level-2 headings get an id (returned) and an entry in `contents()`."""
        hid = anchor or (slug(text) if level == 2 else "")
        if level == 2:
            taken = {i for i, _ in self.sections}
            base, n = hid, 2
            while hid in taken:
                hid, n = f"{base}-{n}", n + 1
            self.sections.append((hid, text))
        idattr = f' id="{html.escape(hid)}"' if hid else ""
        self.blocks.append(f"<h{level}{idattr}>{html.escape(text)}</h{level}>")
        return hid

    def contents(self) -> None:
        """A table of contents of every level-2 heading (filled in when the page is rendered)."""
        self.blocks.append(_TOC)

    def links(self, lead: str, links: Sequence[Link], tail: str = "") -> None:
        """One line: `lead`, the links, `tail`."""
        items = ", ".join(_fmt(x) for x in links)
        self.blocks.append(f"<p>{html.escape(lead)} {items}{html.escape(tail)}</p>")

    def text(self, text: str, cls: str = "") -> None:
        c = f' class="{cls}"' if cls else ""
        self.blocks.append(f"<p{c}>{html.escape(text)}</p>")

    def verdict(
        self, claim: str, holds: bool, detail: str, state: str | None = None, anchor: str | None = None
    ) -> None:
        """One finding of the papers and whether it holds here, with the numbers; `state` names a
        verdict other than holds / does not hold (e.g. "not testable here", "inconclusive")."""
        if state and state not in ("holds", "does not hold"):
            mark = f'<span class="warn">{html.escape(state)}</span>'
        else:
            mark = '<span class="ok">holds</span>' if holds else '<span class="bad">does not hold</span>'
        idattr = f' id="{html.escape(anchor)}"' if anchor else ""
        self.blocks.append(f"<p{idattr}>{html.escape(claim)}: {mark} — {html.escape(detail)}</p>")

    def table(
        self,
        rows: Sequence[dict[str, Any]],
        columns: Sequence[str] | None = None,
        left: Sequence[str] = (),
        headers: dict[str, str] | None = None,
        cls: str = "",
    ) -> None:
        """A table of `rows` (dicts; missing cells blank); `headers` renames columns for display.
        Wide tables scroll inside the page instead of widening it."""
        if not rows:
            self.text("(no rows)")
            return
        cols = list(columns or dict.fromkeys(k for r in rows for k in r))
        names = headers or {}
        head = "".join(
            f'<th class="{"l" if c in left else ""}">{html.escape(names.get(c, c))}</th>' for c in cols
        )
        body = "".join(
            "<tr>"
            + "".join(f'<td class="{"l" if c in left else ""}">{_fmt(r.get(c, ""))}</td>' for c in cols)
            + "</tr>"
            for r in rows
        )
        c = f' class="{cls}"' if cls else ""
        self.blocks.append(f'<div class="tw"><table{c}><tr>{head}</tr>{body}</table></div>')

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
        toc = (
            '<nav class="toc"><b>Contents</b><ol>'
            + "".join(f'<li><a href="#{html.escape(i)}">{html.escape(t)}</a></li>' for i, t in self.sections)
            + "</ol></nav>"
        )
        body = "".join(toc if b == _TOC else b for b in self.blocks)
        return (
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1>{sub}{body}{_LOAD_CHECK}</body></html>"
        )

    def save(self, path: str | Path) -> Path:
        return atomic_write(Path(path), self.render())  # never through a link (vsae.store.safe_io)
