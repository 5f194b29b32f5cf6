"""The HTML report in a real browser: Debian's chromium driven by Playwright, nothing downloaded."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers import run

CHROMIUM = os.environ.get("FACEMATCH_CHROMIUM", "/usr/bin/chromium")
# No first-run pages, no component or safe-browsing downloads: the page is all it sees.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Any:
    if not os.path.exists(CHROMIUM):
        pytest.skip(
            f"no browser at {CHROMIUM}: install the chromium package (apt-get install chromium)"
        )
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def open_report(page: Any, report: Path) -> tuple[list[str], list[int]]:
    """Load the report with every image scrolled into view; returns what went wrong on
    the page (console errors, page errors, requests beyond the file itself, filled in
    as long as the page stays open) and each image's natural width."""
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on(
        "request",
        lambda r: None if r.url.startswith(("file:", "data:")) else problems.append(r.url),
    )
    page.goto(report.as_uri())
    for image in page.locator("img").all():  # lazy images load once scrolled to
        image.scroll_into_view_if_needed()
    page.wait_for_function("[...document.images].every(i => i.complete)")
    widths: list[int] = page.evaluate("[...document.images].map(i => i.naturalWidth)")
    return problems, widths


def test_report_in_a_browser(
    browser: Any, known_files: Path, unknown: Path, data: Path, tmp_path: Path
) -> None:
    (unknown / "4-broken.jpg").write_bytes(b"not an image")
    shutil.copy(data / "tiny-blank.png", unknown / "5-blank.png")
    report = tmp_path / "report.html"
    result = run(known_files, unknown, "--report", report, "--format", "json", "-j", "1")
    assert result.exit_code == 3, result.stderr
    rows = json.loads(result.stdout)
    faces = sum(len(row["faces"]) for row in rows)
    named = sum(1 for row in rows for face in row["faces"] if face["name"] == "Barack Obama")

    page = browser.new_page(viewport={"width": 1000, "height": 700})
    problems, widths = open_report(page, report)
    assert widths and all(w > 0 for w in widths)
    assert page.locator("tr.face").count() == faces
    assert page.locator("section.image").count() == len(rows)
    assert "unreadable" in page.locator("section.image.error").inner_text()

    page.select_option("#filter", "=Barack Obama")
    assert page.locator("tr.face:visible").count() == named
    assert page.locator("section.image:visible").count() == 2
    page.select_option("#filter", "?unknown")
    assert page.locator("tr.face:visible").count() == 1
    page.select_option("#filter", "")
    assert page.locator("tr.face:visible").count() == faces
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert (tmp_path / "report.png").stat().st_size > 10_000
    assert problems == []


def test_cluster_report_in_a_browser(browser: Any, data: Path, tmp_path: Path) -> None:
    photos, library, known = tmp_path / "photos", tmp_path / "people.sqlite3", tmp_path / "known"
    for who in ("amy", "penny", "sheldon"):
        shutil.copytree(data / "people" / "tbbt" / who, photos / who)
    shutil.copy(data / "obama.jpg", photos / "obama.jpg")  # one face each: unclustered
    shutil.copy(data / "biden.jpg", photos / "biden.jpg")
    (photos / "broken.jpg").write_bytes(b"not an image")
    known.mkdir()
    shutil.copy(data / "people" / "tbbt" / "sheldon" / "sheldon1.png", known / "Sheldon.png")

    def cluster(*args: str | Path) -> Any:
        return run("cluster", *args, "--library", library, "-q", "-j", "1")

    first = cluster(photos, "--format", "csv")
    assert first.exit_code == 3, first.stderr
    amy = next(line.split(",")[6] for line in first.stdout.splitlines() if "/amy/" in line)
    named = run("cluster", "name", amy, "Amy <F>", "--library", library, catch_exceptions=True)
    assert named.exit_code == 0, named.stderr
    report = tmp_path / "people.html"
    result = cluster(photos, "--known", known, "--report", report, "--format", "json")
    assert result.exit_code == 3, result.stderr
    rows = json.loads(result.stdout)
    people: dict[str, list[tuple[str, int]]] = {}
    for row in rows:
        people.setdefault(row["person"] or "unclustered", []).append((row["path"], row["face"]))
    assert len(rows) == 17 and len(people) == 4 and len(people["unclustered"]) == 2
    assert {(r["name"], r["named_by"]) for r in rows} == {
        ("Amy <F>", "user"),
        ("Sheldon", "known"),
        (None, "none"),
    }

    page = browser.new_page(viewport={"width": 1000, "height": 800})
    problems, widths = open_report(page, report)
    assert len(widths) == len(rows) and all(w > 0 for w in widths)
    # One section per person (and the unclustered), holding exactly that person's faces.
    sections = page.locator("section.person").all()
    assert len(sections) == len(people)
    seen: dict[str, list[tuple[str, int]]] = {}
    for section in sections:
        heading = section.locator("h2").inner_text()
        person = heading.rsplit("(", 1)[-1].rstrip(")") if "(" in heading else heading
        figures = section.locator("figure.face figcaption")
        seen[person] = [
            (f.get_attribute("title") or "", int(f.inner_text().rsplit(" ", 1)[1]))
            for f in figures.all()
        ]
        assert f"{len(seen[person])} face" in section.locator(".note").inner_text()
    assert {k: sorted(v) for k, v in seen.items()} == {k: sorted(v) for k, v in people.items()}
    amy_section = page.locator("section.person", has_text="Amy <F>")
    assert "named by you" in amy_section.inner_text()
    assert "named from the known folder" in page.locator("section", has_text="Sheldon").inner_text()
    unreadable = page.locator("section.unreadable").inner_text()  # known from the first run
    assert "broken.jpg: not an image" in unreadable

    page.select_option("#filter", f"={amy}")
    assert page.locator("figure.face:visible").count() == len(people[amy])
    assert page.locator("main > section:visible").count() == 1
    page.select_option("#filter", "?unclustered")
    assert page.locator("figure.face:visible").count() == 2
    page.select_option("#filter", "")
    assert page.locator("figure.face:visible").count() == len(rows)
    page.screenshot(path=str(tmp_path / "people.png"), full_page=True)
    assert (tmp_path / "people.png").stat().st_size > 10_000
    assert problems == []
