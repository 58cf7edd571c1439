"""The documentation's promises that can rot silently: every relative link of every committed Markdown page
resolves (the file exists; an anchor names a heading of that page, as GitHub spells anchors), and the README
stays a five-minute read (at most 400 lines, the quickstart within its first 60)."""
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def pages():
    out = subprocess.run(["git", "ls-files", "*.md"], cwd=ROOT, capture_output=True, text=True, check=True)
    return [ROOT / p for p in out.stdout.split()]


def prose(text):
    """The page without its fenced code blocks, where brackets are code, not links."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def anchor(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page):
    return {anchor(m) for m in re.findall(r"^#{1,6} (.+)$", prose(page.read_text()), flags=re.M)}


def test_anchor_is_githubs_spelling():
    assert anchor("The paper's other worlds in detail") == "the-papers-other-worlds-in-detail"
    assert anchor("`curiosity_idf.py`: inverse dynamics features") == "curiosity_idfpy-inverse-dynamics-features"
    assert anchor("Several processes, GPUs and machines") == "several-processes-gpus-and-machines"


def test_every_relative_link_resolves():
    checked, broken = 0, []
    for page in pages():
        for target in LINK.findall(prose(page.read_text())):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            path, _, frag = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            checked += 1
            if not dest.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif frag and dest.suffix == ".md" and frag not in anchors(dest):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert checked > 50  # the README alone links to every results folder
    assert not broken, "\n".join(broken)


def test_readme_is_short_and_starts_with_the_quickstart():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 400, len(lines)
    quickstart = lines.index("## Quickstart")
    install = next(i for i, line in enumerate(lines) if line.startswith("pip install torch==2.13.0"))
    tests = next(i for i, line in enumerate(lines) if line == "python -m pytest -q tests")
    assert quickstart < install < tests < 60, (quickstart, install, tests)
