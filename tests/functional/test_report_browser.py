"""report.html in a real browser: headless Chromium screenshots it at laptop and phone width
(skipped where Chromium is not installed; Debian: apt-get install chromium)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed")

PRESET = """name = "browser"
[data]
dataset = "digits"
train_limit = 200
[model]
name = "mlp"
hidden = [16]
[train]
epochs = 2
batch_size = 32
[[runs]]
name = "sgd"
optimizer = { name = "sgd", lr = 0.1 }
[[runs]]
name = "adam-with-a-long-name"
optimizer = { name = "adam", lr = 0.01 }
"""


def _screenshot(page: Path, out: Path, width: int, height: int) -> None:
    subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--window-size={width},{height}", f"--screenshot={out}", page.resolve().as_uri()],
        capture_output=True, timeout=120, check=False,
    )


def test_report_html_renders_at_laptop_and_phone_width(tmp_path: Path) -> None:
    from PIL import Image

    (tmp_path / "p.toml").write_text(PRESET)
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "optlab", "compare", str(tmp_path / "p.toml"), "--out", str(run),
                           "-q", "-f", "json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for width in (1280, 400):
        shot = tmp_path / f"report-{width}.png"
        _screenshot(run / "report.html", shot, width, 1600)
        assert shot.is_file(), f"no screenshot at {width} px"
        image = Image.open(shot).convert("RGB")
        assert image.size == (width, 1600)
        # Drawn, not blank: the charts' colours and the text's dark ink are on the page.
        colours = image.getcolors(maxcolors=1 << 20) or []
        assert len(colours) > 50
        # Nothing runs off the right edge at phone width except inside scrolling tables: the
        # rightmost column of pixels is the page's background.
        right = {image.getpixel((width - 1, y)) for y in range(0, 1600, 4)}
        assert right <= {(250, 250, 250), (255, 255, 255)}, right
