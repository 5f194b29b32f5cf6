"""Make docs/guide/pictures.md's two pictures: an annotated photo and the report in chromium.

    python docs/make_screenshots.py          # needs chromium and playwright (the test extra)

Known people: Barack Obama only, so Joe Biden shows as an unknown face.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        known, unknown = work / "known", work / "unknown"
        known.mkdir()
        unknown.mkdir()
        shutil.copy(REPO / "examples/known/Barack Obama.jpg", known)
        for name in ("two_people.jpg", "stranger.png", "obama.jpg"):
            shutil.copy(REPO / "examples/unknown" / name, unknown)
        command = [sys.executable, "-m", "facematch", "known", "unknown"]
        command += ["--annotate", "annotated", "--report", "report.html"]
        subprocess.run(command, check=True, cwd=work, stdout=subprocess.DEVNULL)
        with Image.open(work / "annotated" / "two_people.jpg") as image:
            image.thumbnail((640, 640))
            image.convert("P", palette=Image.Palette.ADAPTIVE).save(DOCS / "annotated.png")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
            )
            page = browser.new_page(viewport={"width": 900, "height": 720})
            page.goto((work / "report.html").as_uri())
            page.screenshot(path=str(work / "report.png"))
            browser.close()
        with Image.open(work / "report.png") as image:
            image.convert("P", palette=Image.Palette.ADAPTIVE).save(DOCS / "report.png")


if __name__ == "__main__":
    main()
