"""Headless Chromium for report tests: render a page, read the DOM after load, take a screenshot."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=5000",
]


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "Chromium is not installed; `make test` installs it (Debian package chromium)"
    return exe


def rendered_dom(page: Path, profile: Path) -> str:
    out = subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def image_counts(dom: str) -> tuple[int, int]:
    """(images on the page, images that decoded) as recorded by the report's load check."""
    m = re.search(r'data-images="(\d+)" data-images-loaded="(\d+)"', dom)
    assert m, "the page's load check did not run"
    return int(m.group(1)), int(m.group(2))


def screenshot(page: Path, png: Path, profile: Path, size=(1280, 2400)) -> Path:
    out = subprocess.run(
        [
            chromium(),
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={size[0]},{size[1]}",
            f"--screenshot={png}",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and png.exists(), out.stderr[-2000:]
    return png
