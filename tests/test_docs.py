"""Every relative link in the tracked Markdown files resolves.

A link to a file must name one that exists; a ``#fragment`` must name a
heading of its target (the page itself when the link is only a fragment),
slugged as GitHub does. Links are read with markdown-it-py (it comes with
Ray, through rich), so links inside code blocks and code spans are not
links, as on GitHub. And benchmarks/README.md's results index names every
file under benchmarks/results/, so a new result file arrives with the table
it backs.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from markdown_it import MarkdownIt

REPO = Path(__file__).resolve().parents[1]
PARSER = MarkdownIt("commonmark").enable("table")


def markdown_files() -> list[Path]:
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "*.md"], cwd=REPO, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [REPO / name for name in listed.decode().split("\0") if name]


def github_slug(text: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def inline_text(token) -> str:
    """The heading's text as rendered: code spans keep their content, markup goes."""
    return "".join(child.content for child in token.children or () if child.type in ("text", "code_inline"))


@cache
def anchors(path: Path) -> frozenset[str]:
    tokens = PARSER.parse(path.read_text())
    seen: dict[str, int] = {}
    found = set()
    for opening, inline in zip(tokens, tokens[1:]):
        if opening.type != "heading_open":
            continue
        slug = github_slug(inline_text(inline))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return frozenset(found)


def links(path: Path) -> list[str]:
    found = []
    for token in PARSER.parse(path.read_text()):
        for child in token.children or ():
            if child.type == "link_open":
                found.append(child.attrs["href"])
            elif child.type == "image":
                found.append(child.attrs["src"])
    return found


def broken_links(path: Path) -> list[str]:
    broken = []
    for href in links(path):
        parts = urlsplit(href)
        if parts.scheme or parts.netloc:
            continue  # an outside address: not ours to check offline
        target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
        if not target.exists():
            broken.append(f"{href}: no such file")
        elif parts.fragment and target.suffix == ".md" and unquote(parts.fragment) not in anchors(target):
            broken.append(f"{href}: no such heading")
    return broken


def test_slugs_match_github():
    assert github_slug("KV tier: evicted documents come back from host RAM") == (
        "kv-tier-evicted-documents-come-back-from-host-ram")
    assert github_slug("Ray's control plane") == "rays-control-plane"
    assert github_slug("1,048,576 tokens on a TP=4 group: ready, not run yet") == (
        "1048576-tokens-on-a-tp4-group-ready-not-run-yet")
    assert github_slug('What "correct" means here') == "what-correct-means-here"


def test_checker_sees_broken_links_and_skips_code(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## The `x` key\n\n[ok](#the-x-key) [gone](#nowhere) [file](missing.md)\n"
                    "[self](page.md#title) [other](page.md#gone) ![img](missing.png)\n\n"
                    "`[in code](missing.md)`\n\n```\n[in a block](missing.md)\n```\n")
    assert broken_links(page) == [
        "#nowhere: no such heading", "missing.md: no such file", "page.md#gone: no such heading",
        "missing.png: no such file",
    ]


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(path):
    assert broken_links(path) == []


def test_every_result_file_is_in_the_benchmarks_index():
    """benchmarks/README.md's index names every result file (the stage logs by their pattern rows)."""
    readme = (REPO / "benchmarks" / "README.md").read_text()
    index = readme[readme.index("## Results index"):]
    results = REPO / "benchmarks" / "results"
    named = set(re.findall(r"`([^`]+)`", index))
    missing = [
        str(path.relative_to(results)) for path in tracked_files_under(results)
        if path.relative_to(results).parts[:2] != ("gpu", "logs") and str(path.relative_to(results)) not in named
    ]
    assert missing == [], "add these to benchmarks/README.md's Results index, with the table each backs"


def tracked_files_under(folder: Path) -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z", "--", str(folder)], cwd=REPO, capture_output=True,
                            check=True).stdout
    return [REPO / name for name in listed.decode().split("\0") if name]
