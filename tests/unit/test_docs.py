"""Every relative link and image in README.md and docs/*.md leads to a file of the repository."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def relative_links(page: Path) -> list[str]:
    targets = LINK.findall(page.read_text())
    return [t for t in targets if not re.match(r"[a-z]+:|#", t)]


def test_every_relative_link_of_the_docs_resolves():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    assert len(pages) >= 7
    checked = 0
    for page in pages:
        for target in relative_links(page):
            assert (page.parent / target.split("#")[0]).exists(), f"{page.name}: {target}"
            checked += 1
    assert checked >= 10


def test_the_link_finder_sees_links_and_images(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[a](docs/a.md) ![b](b.png) [c](https://x.org) [d](#top) `[e](f)`")
    assert relative_links(page) == ["docs/a.md", "b.png", "f"]
