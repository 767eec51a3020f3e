#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Checks the generated documentation site for broken links (called by `scripts/docs --check`).

Every href and src of every generated HTML page is resolved: a local target must exist, and a
#fragment must name an id (or a name) in the target page. Links that leave the site (http:,
https:, mailto:) are counted, not fetched. The front page must link every section of the
README. Exits 1 and lists the broken links if any.

usage: docs_check.py <html dir> <README.md>
"""
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from docs_pages import headings  # noqa: E402  (the same slugs the pages were labelled with)


class Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids = set()
        self.links = []  # (tag, attribute, value)

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if value is None:
                continue
            if name in ("id", "name") and (name == "id" or tag == "a"):
                self.ids.add(value)
            if (name == "href" and tag in ("a", "link", "area")) or (
                name == "src" and tag in ("img", "script", "iframe", "source")
            ):
                self.links.append((tag, name, value))


def parse(path: Path) -> Page:
    p = Page()
    p.feed(path.read_text(encoding="utf-8", errors="replace"))
    return p


def main(html_dir: Path, readme: Path) -> int:
    pages = {path.resolve(): parse(path) for path in sorted(html_dir.rglob("*.html"))}
    broken, checked, external = [], 0, 0
    for path, page in pages.items():
        for tag, attr, value in page.links:
            url = urlsplit(value)
            if url.scheme in ("http", "https", "mailto"):
                external += 1
                continue
            if url.scheme or value.startswith("//"):
                broken.append(f"{path.relative_to(html_dir.resolve())}: <{tag} {attr}={value!r}>: unexpected scheme")
                continue
            checked += 1
            target = path if not url.path else (path.parent / unquote(url.path)).resolve()
            where = f"{path.relative_to(html_dir.resolve())}: <{tag} {attr}={value!r}>"
            if not target.exists():
                broken.append(f"{where}: no such file")
                continue
            if url.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else parse(target).ids
                if unquote(url.fragment) not in ids:
                    broken.append(f"{where}: no anchor #{url.fragment} in {target.name}")

    # The front page links every README section.
    index = pages.get((html_dir / "index.html").resolve())
    if index is None:
        broken.append("index.html: the front page is missing")
    else:
        linked = {v for _, _, v in index.links}
        lines = readme.read_text(encoding="utf-8").splitlines()
        for _, level, text, slug in headings(lines):
            if level >= 2 and f"readme.html#readme-{slug}" not in linked:
                broken.append(f"index.html: no link to the README section {text!r} (readme.html#readme-{slug})")

    for line in broken:
        print(f"broken: {line}")
    print(f"docs_check: {len(pages)} pages, {checked} local links checked, {external} external links "
          f"not fetched, {len(broken)} broken")
    return 1 if broken else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
