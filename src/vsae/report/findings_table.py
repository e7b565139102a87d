"""The head of the demo's report: the findings as one scannable table, links to the other pages
of the same output, the table of contents, then each finding's full detail."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vsae.report.html import Link, Report

MAX_NUMBER = 110  # characters of a finding's detail shown as its deciding number


def deciding_number(finding: dict[str, Any]) -> str:
    """The number that decides a finding: its ``decisive`` field when the finding gives one, else
    the first clause of its detail (findings state the deciding comparison first)."""
    if finding.get("decisive"):
        return str(finding["decisive"])
    first = str(finding.get("detail", "")).split(";")[0].strip()
    return first if len(first) <= MAX_NUMBER else first[: MAX_NUMBER - 1].rstrip() + "…"


def verdict_label(f: dict[str, Any]) -> str:
    """HOLDS / DOES NOT HOLD, or the finding's other verdict (NOT TESTABLE HERE, INCONCLUSIVE)."""
    state = f.get("verdict")
    if state and state not in ("holds", "does not hold"):
        return str(state).upper()
    return "HOLDS" if f["holds"] else "DOES NOT HOLD"


def findings_head(r: Report, findings: Sequence[dict[str, Any]], out: Path) -> None:
    """Findings table (finding, paper, verdict, deciding number, link to its detail), links to
    the steering and diffusion pages and to `vsae serve`, the contents, the detailed findings."""
    r.heading("Findings of the papers, measured here", anchor="findings")
    rows = [
        {
            "finding": Link(f["claim"], f"#finding-{i}"),
            "paper": f.get("source", ""),
            "verdict": verdict_label(f),
            "deciding number": deciding_number(f),
            "detail": Link("details", f"#finding-{i}"),
        }
        for i, f in enumerate(findings, 1)
    ]
    r.table(rows, left=("finding", "paper", "verdict", "deciding number"), cls="findings")
    pages = [
        Link(f"{d}/index.html", f"{d}/index.html")
        for d in ("steering", "diffusion", "shared")
        if (out / d / "index.html").is_file()
    ]
    if pages:
        r.links("Pages of this output:", pages, ".")
    r.text(
        f"Browse every SAE of this output latent by latent (table, top images with patch heatmaps, "
        f"uploads, steering): vsae serve {out}"
    )
    r.contents()
    r.heading("Findings in detail", anchor="findings-detail")
    r.text(
        "Each line is computed by this run from the numbers below; a finding that does not hold is reported as such."
    )
    for i, f in enumerate(findings, 1):
        r.verdict(
            f"{f['claim']} ({f.get('source', '')})",
            f["holds"],
            f["detail"],
            f.get("verdict"),
            anchor=f"finding-{i}",
        )
