#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Prepares the Markdown pages of the documentation site for Doxygen (called by scripts/docs).

Each page is copied from the repository with its headings labelled the way GitHub names their
anchors (`## Quick start` gets `{#readme-quick-start}`), and its links rewritten so that they
work inside the generated site: links between the Markdown files become Doxygen references,
links to other repository files point at a copy of the file shipped beside the HTML, and the
front page gets a list of the README's sections.

usage: docs_pages.py <source dir> <pages out dir> <html out dir>
"""
import re
import shutil
import sys
from pathlib import Path

# Repository Markdown file -> Doxygen page label.
PAGES = {
    "README.md": "readme",
    "benchmarks/RESULTS.md": "results",
    "CHANGELOG.md": "changelog",
    "CONTRIBUTING.md": "contributing",
    "docs/architecture.md": "architecture",
    "docs/index.md": "mainpage",
}
TITLES = {"readme": "README", "results": "Benchmark results", "changelog": "Changelog",
          "contributing": "Contributing"}

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
LINK = re.compile(r"\[((?:[^\]\\]|\\.)*)\]\(([^)\s]+)\)")


def github_slug(text: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", text)
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def headings(lines):
    """Yields (index, level, text, slug) for each heading outside code fences, with GitHub's
    -1, -2 suffixes for repeated slugs."""
    seen = {}
    fenced = False
    for i, line in enumerate(lines):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            continue
        m = HEADING.match(line)
        if not m:
            continue
        text = m.group(2)
        slug = github_slug(re.sub(r"\s*\{#[^}]*\}\s*$", "", text))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        yield i, len(m.group(1)), text, slug if n == 0 else f"{slug}-{n}"


class Site:
    def __init__(self, source: Path, pages_out: Path, html_out: Path):
        self.source, self.pages_out, self.html_out = source, pages_out, html_out
        self.copied = set()

    def ref(self, page_label: str, fragment: str) -> str:
        if not fragment:
            return f"@ref {page_label}"
        return f"@ref {page_label}-{fragment}" if page_label != "mainpage" else f"@ref {fragment}"

    def rewrite_link(self, page: str, text: str, target: str) -> str:
        """The Markdown link [text](target) of `page`, as it must read inside the site."""
        if re.match(r"^[a-z]+:", target) or target.endswith(".html") or ".html#" in target:
            return f"[{text}]({target})"  # external, or already a page of the generated site
        path, _, fragment = target.partition("#")
        if not path:
            return f"[{text}]({self.ref(PAGES[page], fragment)})"
        repo_path = (Path(page).parent / path).as_posix()
        resolved = (self.source / repo_path).resolve()
        try:
            rel = resolved.relative_to(self.source.resolve()).as_posix()
        except ValueError:
            return f"[{text}]({target})"  # outside the repository: left for the link check to report
        if rel in PAGES:
            return f"[{text}]({self.ref(PAGES[rel], fragment)})"
        if resolved.exists():
            # Any other repository file (an example, LICENSE, a folder) ships beside the HTML.
            dest = self.html_out / "repo" / rel
            if rel not in self.copied:
                dest.parent.mkdir(parents=True, exist_ok=True)
                if resolved.is_dir():
                    shutil.copytree(resolved, dest, dirs_exist_ok=True)
                else:
                    shutil.copy2(resolved, dest)
                self.copied.add(rel)
            # A raw HTML link, so that Doxygen does not take a shipped .md file for a page of its own.
            return f'<a href="repo/{rel}">{text}</a>'
        return f"[{text}]({target})"

    def page(self, repo_path: str, extra=None) -> str:
        label = PAGES[repo_path]
        lines = (self.source / repo_path).read_text(encoding="utf-8").splitlines()
        heads = {i: (level, text, slug) for i, level, text, slug in headings(lines)}
        out = []
        fenced = False
        first_heading = True
        for i, line in enumerate(lines):
            if FENCE.match(line):
                fenced = not fenced
                out.append(line)
                continue
            if fenced:
                out.append(line)
                continue
            if i in heads:
                level, text, slug = heads[i]
                text = text.replace("`", "")  # Doxygen shows code spans in headings as literal <tt>
                if "{#" not in text:
                    if first_heading and level == 1:
                        text = f"{TITLES.get(label, text)} {{#{label}}}"
                    else:
                        text = f"{text} {{#{label}-{slug}}}"
                first_heading = False
                line = f"{'#' * level} {text}"
            # Rewrite links that do not start inside an inline code span.
            line = LINK.sub(
                lambda m: m.group(0)
                if line.count("`", 0, m.start()) % 2
                else self.rewrite_link(repo_path, m.group(1), m.group(2)),
                line,
            )
            out.append(line)
        text = "\n".join(out) + "\n"
        if extra:
            for key, value in extra.items():
                text = text.replace(key, value)
        return text

    def readme_sections(self) -> str:
        lines = (self.source / "README.md").read_text(encoding="utf-8").splitlines()
        items = []
        for _, level, text, slug in headings(lines):
            if level < 2:
                continue
            title = re.sub(r"`", "", text).replace('"', "'")
            items.append(f"{'  ' * (level - 2)}- @ref readme-{slug} \"{title}\"")
        return "\n".join(items)

    def build(self):
        self.pages_out.mkdir(parents=True, exist_ok=True)
        names = {"docs/index.md": "index.md"}
        for repo_path, label in PAGES.items():
            if not (self.source / repo_path).exists():
                sys.exit(f"docs_pages: {repo_path} is missing")
            extra = {"@DISTKIT_README_SECTIONS@": self.readme_sections()} if label == "mainpage" else None
            name = names.get(repo_path, f"{label}.md")
            (self.pages_out / name).write_text(self.page(repo_path, extra), encoding="utf-8")
        print(f"docs_pages: {len(PAGES)} pages, {len(self.copied)} repository files shipped beside them")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    Site(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])).build()
