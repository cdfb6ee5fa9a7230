"""The repository explains itself: nothing in README, docs/ or the package points outside it.

A user who clones superionic has no ``../shared`` directory; a link there is a dead end. The
science and the design a user needs are in docs/science.md and docs/design.md, and README links
to them.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE = re.compile(r"\.\./shared")


def _text_files() -> list[Path]:
    files = [ROOT / "README.md"]
    for folder in ("docs", "python"):
        files += [
            p for p in (ROOT / folder).rglob("*") if p.is_file() and p.suffix not in {".png", ".gz", ".so"}
        ]
    return files


def test_nothing_points_outside_the_repository():
    hits = []
    for path in _text_files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue  # binary artefacts (compiled modules, plots) hold no links
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not hits, "links outside the repository (copy what users need into docs/):\n" + "\n".join(hits)


def test_readme_links_the_science_and_the_design():
    readme = (ROOT / "README.md").read_text()
    for page in ("docs/science.md", "docs/design.md"):
        assert f"]({page})" in readme, f"README.md does not link {page}"
        assert (ROOT / page).is_file(), f"{page} is missing"


def test_every_relative_link_in_the_docs_resolves():
    # Markdown links [text](target) that are not web addresses must name a file of the repository.
    link = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
    broken = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for target in link.findall(page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            if not (page.parent / target).resolve().exists():
                broken.append(f"{page.relative_to(ROOT)} → {target}")
    assert not broken, "broken links:\n" + "\n".join(broken)
