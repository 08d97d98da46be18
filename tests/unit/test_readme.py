"""The README documents what the parser has and the code reads: its command reference is the
parser's (generated, equal), every `--option` it names exists (or belongs to another tool, listed
here), every `vbench COMMAND` it names exists, and its environment variable table is exactly the
variables the code, the scripts and the workflow read."""

from __future__ import annotations

import re
from pathlib import Path

from vbench.commands import build_parser
from vbench.commands.walk import reference_markdown, subcommand_parsers

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
OTHER_TOOLS_FLAGS = {"--no-build-isolation": "pip", "--pin": "scripts/nightly.sh",
                     "--explore": "bench/bench_gate.py", "--night-shift": "bench/bench_gate.py",
                     "--only": "bench/bench_reference.py", "--sandbox": "bench/bench_reference.py",
                     "--raw-net": "bench/bench_reference.py",
                     "--raw-launch": "bench/bench_reference.py",
                     "--vbench-guests": "bench/bench_reference.py",
                     "--vcpus": "bench/bench_reference.py"}
NOT_ENV = {"VBENCH_EOF"}  # a shell here-document marker in a string, not a variable


def _section(title: str) -> str:
    part = README[README.index(f"\n## {title}\n"):]
    return part[: part.index("\n## ", 5)]


def test_command_reference_is_the_parsers():
    assert reference_markdown(build_parser()) in _section("Command reference"), (
        "README's command reference is out of date: paste reference_markdown(build_parser()) "
        "from vbench.commands.walk")


def test_every_documented_option_exists():
    parser = build_parser()
    options = set()
    for sp in [parser, *subcommand_parsers(parser).values()]:
        for action in sp._actions:
            options |= set(action.option_strings)
    named = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", README))
    assert named - options - set(OTHER_TOOLS_FLAGS) == set()


def test_every_documented_command_exists():
    paths = set(subcommand_parsers(build_parser()))
    words = {p.split()[0] for p in paths}
    groups = {p.split()[0] for p in paths if " " in p}
    seen = set()
    for m in re.finditer(r"(?<![\w/.-])vbench ([a-z]+)(?: ([a-z]+))?", README):
        first, second = m.group(1), m.group(2)
        if first not in words:
            continue  # prose: "vbench runs as root", "vbench measures"
        seen.add(first)
        if first in groups and second:
            assert f"{first} {second}" in paths, f"README names `{m.group(0)}`: no such command"
    assert seen == words, f"commands the README never names: {sorted(words - seen)}"


def _env_read() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "src").rglob("*.py"):
        names |= set(re.findall(r"[\"'](VBENCH_[A-Z_]+)[\"']", path.read_text()))
    for path in [*(ROOT / "scripts").glob("*.sh"), *(ROOT / ".github/workflows").glob("*.yml")]:
        names |= set(re.findall(r"\b(VBENCH_[A-Z_]+)\b", path.read_text()))
    for path in (ROOT / "tests").rglob("*.py"):
        names |= set(re.findall(r"environ(?:\.get)?\(?\[?[\"'](VBENCH_UPDATE_GOLDEN|VBENCH_NESTED_TESTS)[\"']",
                                path.read_text()))
    return names - NOT_ENV


def test_environment_variables_table_is_what_is_read():
    table = set(re.findall(r"`(VBENCH_[A-Z_]+)`", _section("Environment variables")))
    assert table == _env_read() | {"VBENCH_UPDATE_GOLDEN", "VBENCH_NESTED_TESTS"}


def test_issue_23_flags_and_variables_are_documented():
    for text in ("vbench image list", "--title", "--history", "--results", "--reports",
                 "--no-report", "VBENCH_GUESTS", "VBENCH_RESULTS", "VBENCH_REPORTS",
                 "VBENCH_FLEETS", "VBENCH_REPORT_JOBS"):
        assert text in README, text


def test_readme_has_a_table_of_contents_linking_every_section():
    toc = _section("Contents")
    for title in re.findall(r"^## (.+)$", README, re.MULTILINE):
        if title == "Contents":
            continue
        anchor = re.sub(r"[^a-z0-9 _-]", "", title.lower()).replace(" ", "-")
        assert f"(#{anchor})" in toc, f"{title!r} (#{anchor}) is not in the contents"
