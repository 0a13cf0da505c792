"""The documentation holds: the README is short, every relative link resolves, every
command in the README (and CONTRIBUTING.md) runs, and the contract copied into docs/ is the
project's."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests import test_deploy, test_operator

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"  # the project's contract, beside a working copy; absent in a standalone clone
PAGES = sorted([ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "CONTRIBUTING.md", ROOT / "emulator" / "README.md",
                *(ROOT / "docs").glob("*.md")])
COPIES = ["INTERFACE.md", "reference/ReInitDisk-api.txt"]


def prose(text: str) -> str:
    """The Markdown without its fenced blocks and code spans, where a `[x](y)` is not a link."""
    text = re.sub(r"(?ms)^```.*?^```", "", text)
    return re.sub(r"`[^`\n]*`", "", text)


def anchors(page: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens, repeats -1, -2..."""
    seen: dict[str, int] = {}
    ids = set()
    for heading in re.findall(r"(?m)^#{1,6} +(.+?) *#*$", re.sub(r"(?ms)^```.*?^```", "", page.read_text())):
        slug = re.sub(r"[^\w\- ]", "", heading.replace("`", "").lower()).replace(" ", "-")
        ids.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return ids


def links(page: Path) -> list[str]:
    return [target for target in re.findall(r"\]\(([^)\s]+)(?: \"[^\"]*\")?\)", prose(page.read_text()))
            if not re.match(r"[a-z][a-z0-9+.-]*:", target)]  # https:, mailto: are not files


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    broken = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {file.relative_to(ROOT)}")
    assert broken == []


def test_the_link_check_sees_a_broken_link_and_a_broken_anchor(tmp_path):
    (tmp_path / "a.md").write_text("# A page\n\n## The `two` commands\n\n[ok](#the-two-commands) [no](b.md)"
                                   " [bad](#nowhere) `[code](ignored.md)`\n```\n[block](ignored.md)\n```\n")
    assert links(tmp_path / "a.md") == ["#the-two-commands", "b.md", "#nowhere"]
    assert anchors(tmp_path / "a.md") == {"a-page", "the-two-commands"}


def test_no_page_links_outside_the_repository():
    """A clone is whole: the contract and the ReInitDisk page are linked in docs/, not ../shared."""
    outside = [f"{p.relative_to(ROOT)}: {t}" for p in PAGES for t in links(p)
               if not (p.parent / t.partition("#")[0]).resolve().is_relative_to(ROOT)]
    assert outside == []
    assert [p.name for p in PAGES if "../shared" in p.read_text()] == []


@pytest.mark.parametrize("name", COPIES)
def test_the_contract_in_docs_is_the_projects(name):
    if not SHARED.is_dir():
        pytest.skip("no ../shared beside this clone: docs/ holds the only copy of the contract")
    assert (ROOT / "docs" / name).read_text() == (SHARED / name).read_text(), (
        f"docs/{name} differs from {SHARED / name}: copy it again (cp {SHARED / name} docs/{name})")


def test_the_readme_is_read_in_ten_minutes():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


def test_the_pre_commit_ruff_is_the_pinned_ruff():
    pinned = re.search(r"(?m)^ruff==(\S+)", (ROOT / "requirements-dev.txt").read_text()).group(1)
    assert re.search(r"(?m)^\s+rev: v(\S+)", (ROOT / ".pre-commit-config.yaml").read_text()).group(1) == pinned


# -- every command in the README runs -------------------------------------------------------------
def shell_blocks(page: Path) -> dict[str, list[str]]:
    """Each `## section`'s shell commands (comments and blank lines dropped)."""
    sections = {}
    for part in re.split(r"(?m)^## ", page.read_text())[1:]:
        heading, _, body = part.partition("\n")
        lines = [line.split("  #")[0].strip() for block in re.findall(r"```sh\n(.*?)```", body, re.S)
                 for line in block.splitlines()]
        sections[heading] = [line for line in lines if line and not line.startswith("#")]
    return sections


def dry_run(command: str) -> list[str] | None:
    """The offline form of a command, or None where there is none: `make T` as `make -n T`,
    `python -m M SUB ...` as `M SUB --help`, pytest as a collection of what it selects, ruff as is."""
    words = shlex.split(command, comments=True)
    if words[0] == "make":
        return ["make", "-n", *words[1:]]
    if words[0] in (".venv/bin/python", "python", "python3") and words[1] == "-m":
        if words[2] == "pytest":
            return [sys.executable, *words[1:], "--collect-only", "-q", "-p", "no:cacheprovider"]
        sub = [w for w in words[3:4] if not w.startswith("-")]
        return [sys.executable, "-m", words[2], *sub, "--help"]
    if words[0] == ".venv/bin/ruff":
        return [sys.executable, "-m", "ruff", *words[1:]]
    return None


def readme_checks() -> list[tuple[str, str]]:
    """(section, command) for every README command that no other test runs as written."""
    sections = shell_blocks(ROOT / "README.md")
    # Run verbatim by tests/test_operator.py, and checked against s.yaml by tests/test_deploy.py:
    walkthrough = [c for b in test_operator.walkthrough() for c in shell_blocks_of(b)]
    assert sections.pop("From clone to a signed curl, locally") == walkthrough
    assert sections.pop("Deploy, step by step") == test_deploy.readme_commands()
    return [(s, c) for s, commands in sections.items() for c in commands]


def shell_blocks_of(block: str) -> list[str]:
    lines = [line.split("  #")[0].strip() for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def contributing_checks() -> list[tuple[str, str]]:
    return [(s, c) for s, commands in shell_blocks(ROOT / "CONTRIBUTING.md").items() for c in commands]


@pytest.mark.parametrize("section, command", readme_checks() + contributing_checks())
def test_every_documented_command_runs(section, command):
    args = dry_run(command)
    assert args is not None, f"{command!r} ({section}) is run by no test: give it an offline form in dry_run()"
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, (out.stdout + out.stderr)[-2000:]
    if "pytest" in args:
        assert re.search(r"\b[1-9]\d* tests? collected|^tests/", out.stdout, re.M), out.stdout[-2000:]


def test_the_readme_has_commands_of_every_kind():
    """The two commands, the walkthrough and the deploy are all there, so none is checked by nothing."""
    sections = shell_blocks(ROOT / "README.md")
    assert sections["The two commands"] == ["make demo", "make test"]
    assert any("python -m reinit send" in c for c in sections["From clone to a signed curl, locally"])
    assert sections["Deploy, step by step"][-1] == "s deploy"
