import numpy as np
from PIL import Image

from tests.report.browser import image_counts, rendered_dom, screenshot
from vsae.report.html import Report, image_grid


def test_image_grid_layout():
    ims = [np.full((4, 6, 3), i * 40, np.uint8) for i in range(5)]
    g = image_grid(ims, cols=2, scale=3, pad=1)
    assert g.size == (2 * (18 + 1) + 1, 3 * (12 + 1) + 1)
    assert g.getpixel((1 + 18 + 1 + 5, 1 + 5)) == (40, 40, 40)  # second image, first row
    assert g.getpixel((1, 1 + 2 * 13 + 2)) == (160, 160, 160)  # fifth image, third row


def test_report_is_self_contained_and_renders_in_chromium(tmp_path):
    r = Report("t <title>", "sub")
    r.verdict("claim", True, "a > b")
    r.table([{"a": 1.23456, "b": "x<y"}, {"a": float("nan"), "c": 3}], left=("b",))
    r.cards([(Image.new("RGB", (8, 8), "red"), "red card"), (Image.new("RGB", (8, 8), "blue"), "blue card")])
    page = r.save(tmp_path / "r.html")
    text = page.read_text()
    assert "http://" not in text and "https://" not in text  # nothing to fetch
    assert "x&lt;y" in text and "1.235" in text and "<th" in text and ">c<" in text  # union of columns
    dom = rendered_dom(page, tmp_path / "profile")
    assert image_counts(dom) == (2, 2)
    png = screenshot(page, tmp_path / "shot.png", tmp_path / "profile2", size=(800, 600))
    shot = np.asarray(Image.open(png).convert("RGB"))
    red = (shot[..., 0] > 200) & (shot[..., 1] < 60) & (shot[..., 2] < 60)
    assert red.sum() > 1000  # the red card image is painted


def test_verdict_renders_a_third_state():
    r = Report("t", "s")
    r.verdict("claim", False, "numbers [-1.0, +2.0]", "not testable here")
    r.verdict("other", True, "d", "holds")
    html = r.render()
    assert '<span class="warn">not testable here</span>' in html and "[-1.0, +2.0]" in html
    assert '<span class="ok">holds</span>' in html
