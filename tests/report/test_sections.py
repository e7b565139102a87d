"""The report sections moved beside their experiments and into the demo, rendered from small
hand-made results: their headings, the rows of their tables (one per latent / layer / check,
with the numbers of the result) and the escaping of text that comes from the models or the data."""

from __future__ import annotations

import copy
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from vsae.demo.report_page import uniqueness_section, what_was_run_section
from vsae.demo.report_sections import _why, checks_section, hierarchy_section, need
from vsae.experiments.mllm_steering.mllm_report import (
    answer_counts,
    steering_examples,
    steering_section,
    write_steering_index,
)
from vsae.experiments.shared_features.shared_report import MAX_LATENTS, shared_section
from vsae.report.html import Report


class _Page(HTMLParser):
    """Headings (level, text) and tables (rows of cell texts) of a rendered page, in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.headings: list[tuple[int, str]] = []
        self.tables: list[list[list[str]]] = []
        self.paragraphs: list[str] = []
        self._text: list[str] | None = None
        self._tag = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("h2", "h3", "td", "th", "p"):
            self._text, self._tag = [], tag

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._text is None or tag != self._tag:
            return
        text = "".join(self._text)
        if tag in ("h2", "h3"):
            self.headings.append((int(tag[1]), text))
        elif tag == "p":
            self.paragraphs.append(text)
        else:
            self.tables[-1][-1].append(text)
        self._text = None


def _parse(r: Report) -> tuple[_Page, str]:
    html = r.render()
    p = _Page()
    p.feed(html)
    return p, html


# --- the MLLM steering experiment's section ------------------------------------------------


def _steer_result(with_blank: bool = True) -> dict[str, Any]:
    """A results.json of `run_steering` with two latents on three images (no example where the
    answer turns into the latent's concept, so no image is loaded)."""
    res: dict[str, Any] = {
        "method": "m",
        "config": {
            "op": "clamp",
            "value": 50.0,
            "tokens": "all",
            "pre_zero": False,
            "hook": "resid.2",
            "question": "What <is> this?",
            "images": "world:test",
            "n_images": 3,
            "seed": 0,
        },
        "llava": {"model": "tiny-llava"},
        "sae": "sae-dir",
        "scale": {"mean_token_norm": 3.25, "median_max_token_activation": 1.5},
        "score": {"steered": 0.5, "baseline": 0.25, "moved_toward": 0.75, "moved_away": 0.125},
        "latents": [
            {
                "latent": 7,
                "name": "star 88% / red 50%",
                "answers_steered": ["red", "red", "<b>bold</b>"],
                "answers_baseline": ["cross", "cross", "disk"],
                "score_steered": 0.625,
                "score_baseline": 0.25,
            },
            {
                "latent": 12,
                "name": "",
                "answers_steered": ["disk", "disk", "disk"],
                "answers_baseline": ["cross", "cross", "disk"],
                "score_steered": 0.375,
                "score_baseline": 0.25,
            },
        ],
        "test_images": ["a", "b", "c"],
    }
    if with_blank:
        res["blank_image"] = {
            "score": {"steered": 0.4, "baseline": 0.3, "moved_toward": 0.5, "moved_away": 0.0},
            "baseline_answer": "white & blank",
            "latents": [{"latent": 3, "name": "disk 60% / blue 40%", "answer": "blue"}],
        }
    return res


def test_steering_section_headings_rows_and_escaping(tmp_path):
    r = Report("t", "s")
    steering_section(r, _steer_result(), tmp_path)
    page, html = _parse(r)
    assert [t for _, t in page.headings] == [
        "Steering the multimodal model through SAE latents in its vision encoder (Pach et al.)",
        "Answers per latent",
        "One blank white image (unsteered answer: \u201cwhite & blank\u201d)",
        "Editing one latent makes the model name its concept (0 cases)",
    ]
    scores, per_latent, blank = page.tables
    assert scores[1] == ["3 test images", "2", "0.500", "0.250", "0.750", "0.125"]
    assert scores[2] == ["one blank white image", "1", "0.400", "0.300", "0.500", "0.000"]
    assert [row[0] for row in per_latent[1:]] == ["7", "12"]  # one row per steered latent, in order
    assert per_latent[1][1:4] == ["star 88% / red 50%", "red x2, <b>bold</b> x1", "cross x2, disk x1"]
    assert blank[1] == ["3", "disk 60% / blue 40%", "blue"]
    # text from the model and the config is escaped, never markup
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "<b>bold" not in html
    assert "What &lt;is&gt; this?" in html and "white &amp; blank" in html
    assert any("clamp 50, all tokens" in p and "resid.2" in p and "3.25" in p for p in page.paragraphs)
    assert "No (latent, image) pair in this run" in html
    assert "<img" not in html  # no scores.png in the directory, no example: nothing to show


def test_steering_section_without_blank_image_has_one_score_row(tmp_path):
    r = Report("t", "s")
    steering_section(r, _steer_result(with_blank=False), tmp_path)
    page, _ = _parse(r)
    assert len(page.tables[0]) == 2 and len(page.tables) == 2  # header + test images; no blank table
    assert not any(t.startswith("One blank white image") for _, t in page.headings)


def test_steering_index_page(tmp_path):
    page = write_steering_index(tmp_path, _steer_result())
    assert page == tmp_path / "index.html"
    text = page.read_text()
    assert "<title>vsae steer</title>" in text and "tiny-llava · SAE sae-dir" in text


def test_steering_examples_and_answer_counts():
    res = _steer_result()
    assert steering_examples(res) == []  # "red" is not the concept "star"
    res["latents"][0]["answers_steered"] = ["Star!", "cross", "star"]
    got = steering_examples(res)
    # image 0: cross -> star; image 2: disk -> star; image 1 stays "cross"; latent 12 has no name
    assert [(e["latent"], e["image"], e["baseline"], e["steered"]) for e in got] == [
        (7, 0, "cross", "star"),
        (7, 2, "disk", "star"),
    ]
    assert answer_counts(["", "a", "a"]) == "a x2, (empty) x1"


# --- the shared-features experiment's section ---------------------------------------------------


def _shared_result(n_latents: int = 2) -> dict[str, Any]:
    lat = [
        {
            "latent": i,
            "r": 0.5,
            "d_img": 0.1,
            "d_txt": 0.1,
            "text_value": "<red>",
            "image_value": "red",
            "agree": i == 0,
        }
        for i in range(n_latents)
    ]
    layer = {
        "n_latents": 256,
        "n_live": 200,
        "n_shared": 40,
        "shared_fraction": 0.2,
        "n_image_leaning": 100,
        "n_text_leaning": 60,
        "n_scored": n_latents,
        "agreement": 0.5,
        "random_agreement": 0.25,
        "p_value": 0.01,
        "shared_latents": lat,
    }
    return {
        "config": {"shared_range": [0.2, 0.8], "top_k": 16, "n_draws": 100},
        "layers": {"resid.0": layer, "resid.1": {**layer, "n_live": 150, "shared_latents": []}},
        "setup": {
            "expansion": 4,
            "k": 8,
            "steps": 300,
            "question": "What & where?",
            "image_tokens_per_image": 64,
            "balance": "equal",
            "rows_train": 10,
            "n_train": 5,
            "rows_test": 6,
            "n_test": 3,
        },
    }


def test_shared_section_rows_per_layer_and_latent(tmp_path):
    r = Report("t", "s")
    shared_section(r, _shared_result(), tmp_path)
    page, html = _parse(r)
    assert [t for _, t in page.headings] == [
        "Shared vision/language latents inside the multimodal model (Olson et al.)",
        "resid.0: scored shared latents",  # resid.1 has none: no table
    ]
    layers, latents = page.tables
    assert [row[:3] for row in layers[1:]] == [["resid.0", "256", "200"], ["resid.1", "256", "150"]]
    assert [row[0] for row in latents[1:]] == ["0", "1"] and [row[-1] for row in latents[1:]] == ["yes", "no"]
    assert "&lt;red&gt;" in html and "<red>" not in html  # words from the data are escaped
    assert "What &amp; where?" in html and "x4, k=8, 300 steps" in html


def test_shared_section_caps_the_latent_table(tmp_path):
    r = Report("t", "s")
    shared_section(r, _shared_result(MAX_LATENTS + 5), tmp_path)
    page, _ = _parse(r)
    assert len(page.tables[1]) == 1 + MAX_LATENTS


# --- the demo's own sections -----------------------------------------------------------------


def test_checks_section_marks_a_disagreement():
    results = {
        "checks": [
            {"check": "FVU two ways", "a": 0.25, "b": 0.25, "rule": "|a - b| < 1e-3", "ok": True},
            {"check": "MS <two> ways", "a": 0.5, "b": 0.75, "rule": "equal", "ok": False},
        ],
        "probe": {"train_rows": {"method": "spread", "rows": 30, "of": 90, "seed": 0}},
    }
    r = Report("t", "s")
    checks_section(r, results)
    page, html = _parse(r)
    assert page.headings == [(2, "Self-checks of this run")]
    (table,) = page.tables
    assert table[1] == ["FVU two ways", "a 0.2500, b 0.2500", "|a - b| < 1e-3", "yes"]
    assert table[2][0] == "MS <two> ways" and table[2][-1] == "NO"
    assert "MS &lt;two&gt; ways" in html and "30 of 90, spread (seed 0)" in html
    r2 = Report("t", "s")
    checks_section(r2, {})  # no checks: no section
    assert _parse(r2)[0].headings == []


def _layers() -> dict[str, Any]:
    u = {"n_pairs": 10, "pairs_above": {"0.1": 5, "0.3": 3, "0.5": 1, "0.9": 0}}
    return {"resid.1": {"raw": {"uniqueness": u}, "saes": {"topk-x4": {"uniqueness": {**u, "n_pairs": 20}}}}}


def test_uniqueness_and_what_was_run_sections():
    r = Report("t", "s")
    uniqueness_section(r, {"layers": _layers()})
    results = {
        "config": {
            "hooks": ["resid.1"],
            "tokens": "cls",
            "counts": {"train": 10, "test": 5},
            "archs": ["topk"],
            "expansions": [4],
            "k": 8,
            "steps": 100,
            "batch_size": 64,
            "groups": [1, 2],
        },
        "models": {"explained": {"path": "clip<dir>"}, "similarity_encoder": {"description": "a ViT"}},
        "timings": {"world": 1.25, "total": 2.5},
    }
    what_was_run_section(r, results)
    page, html = _parse(r)
    assert [t for _, t in page.headings] == ["Uniqueness of top-image sets (Pach et al.)", "What was run"]
    uniq, run = page.tables
    assert uniq[0] == ["hook", "units", "pairs", "J>0.1", "J>0.3", "J>0.5", "J>0.9"]
    assert uniq[1] == ["resid.1", "raw neurons", "10", "5", "3", "1", "0"] and uniq[2][:3] == [
        "resid.1",
        "topk-x4",
        "20",
    ]
    assert [row[0] for row in run[1:]] == [
        "model explained",
        "similarity encoder (MS)",
        "images",
        "SAEs",
        "time per stage (s)",
    ]
    assert run[3][1] == "train 10, test 5" and run[5][1] == "world 1.2, total 2.5"
    assert "clip&lt;dir&gt;" in html


def test_hierarchy_reason_and_need():
    shares = {"resid.1": {"shape_family": 0.1, "shape": 0.4, "colour_family": 0.05, "colour": 0.5}}
    text = _why(shares, {"variance_share": {"family": 0.9, "leaf": 1.0}})
    assert text.startswith("Each coarse level explains at most 25% of what the level below it explains")
    assert "planted control the family level explains 90%" in text and "not coarse-to-fine" in text
    assert "not coarse-to-fine" not in _why(shares, None)
    assert need(3) == 3
    with pytest.raises(ValueError, match="SAEs only"):
        need(None)


def test_sections_leave_the_result_unchanged(tmp_path: Path):
    """The sections only read the results (the demo writes results.json after the report)."""
    steer, shared = _steer_result(), _shared_result()
    before = copy.deepcopy((steer, shared))
    r = Report("t", "s")
    steering_section(r, steer, tmp_path)
    shared_section(r, shared, tmp_path)
    assert (steer, shared) == before


def _group(g: int, lo: int, hi: int, depth: float, scored: int) -> dict[str, Any]:
    return {"group": g, "latents": [lo, hi], "mean_depth": depth, "n_scored": scored}


def test_hierarchy_section_depth_rows_and_planted_control(tmp_path):
    sae = {
        "depth_per_group": [_group(0, 0, 4, 1.25, 3), _group(1, 4, 16, float("nan"), 0)],
        "depth_per_group_colour": [_group(0, 0, 4, 0.5, 3), _group(1, 4, 16, 1.5, 7)],
        "dead_per_group": [0, 2],
    }
    planted = {
        "config": {
            "n": 100,
            "d": 8,
            "n_families": 2,
            "coarse_scale": 4.0,
            "n_leaves": 3,
            "fine_scale": 1.0,
            "d_sae": 8,
            "k": 2,
            "steps": 50,
        },
        "variance_share": {"family": 0.9, "leaf": 1.0},
        **{
            arch: {
                "depth_per_group": [_group(0, 0, 2, 0.25, 2), _group(1, 2, 8, 1.75, 6)],
                "coarse_cosine_per_group": [0.875, 0.125],
                "fine_cosine_per_group": [0.25, 0.625],
            }
            for arch in ("matryoshka", "batchtopk")
        },
    }
    results = {
        "featured": ["resid.1", "matryoshka", 4],
        "layers": {"resid.1": {"saes": {"matryoshka-x4": sae, "topk-x4": {}}}},  # topk has no groups: no row
        "hierarchy": {
            "levels": {"class": ["shape_family", "shape"], "colour": ["colour_family", "colour"]},
            "variance_share": {
                "resid.1": {
                    "shape_family": 0.1,
                    "shape": 0.4,
                    "colour_family": 0.05,
                    "colour": 0.5,
                    "size": 0.2,
                }
            },
            "planted": planted,
        },
    }
    r = Report("t", "s")
    hierarchy_section(r, results, {}, tmp_path)  # no Matryoshka analysis: no plot
    page, html = _parse(r)
    assert [t for _, t in page.headings] == [
        "Hierarchy of Matryoshka groups (Pach et al.)",
        "Class taxonomy",
        "Colour taxonomy",
        "Is the world's variance coarse-to-fine?",
        "Control: a planted hierarchy",
    ]
    cls, colour, variance, control = page.tables
    assert cls[0] == ["hook", "SAE", "group 0", "group 1"]
    assert cls[1:] == [["resid.1", "matryoshka-x4", "1.25 (3 scored, 0 dead)", "– (0 scored, 2 dead)"]]
    assert colour[1][2:] == ["0.50 (3 scored, 0 dead)", "1.50 (7 scored, 2 dead)"]
    # the taxonomy levels first, then the other attributes
    assert variance[0] == ["hook", "shape_family", "shape", "colour_family", "colour", "size"]
    assert [row[:2] for row in control[1:]] == [
        ["matryoshka", "0 (0–2)"],
        ["matryoshka", "1 (2–8)"],
        ["batchtopk", "0 (0–2)"],
        ["batchtopk", "1 (2–8)"],
    ]
    assert control[1][2:] == ["2", "0.250", "0.875", "0.250"]
    assert any("groups of 2 + 6 latents" in p for p in page.paragraphs) and "<img" not in html
