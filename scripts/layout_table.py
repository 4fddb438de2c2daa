#!/usr/bin/env python3
"""The module table of docs/layout.md: every module of ``naslid`` and ``naslid_ext`` with the first
sentence of its docstring, between the ``<!-- BEGIN layout -->`` / ``<!-- END layout -->`` markers.

    python scripts/layout_table.py            # rewrite docs/layout.md's table
    python scripts/layout_table.py --check    # exit 1 if the table is out of date (tests run this)

Reads the files with ``ast`` (imports nothing), so it runs without torch.
"""
from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (("naslid", ROOT / "python" / "naslid"), ("naslid_ext", ROOT / "naslid_ext"))
DOC = ROOT / "docs" / "layout.md"
BEGIN, END = "<!-- BEGIN layout -->", "<!-- END layout -->"


def first_sentence(doc: str | None) -> str:
    if not doc:
        return ""
    para = " ".join(doc.strip().split("\n\n")[0].split())
    m = re.match(r"(.+?\.)(\s|$)", para)
    s = (m.group(1) if m else para).rstrip(".")
    return s.replace("``", "`").replace("|", "\\|")


def modules() -> list[tuple[str, str, str]]:
    """(dotted name, repo-relative path, first docstring sentence) of every module, sorted."""
    out = []
    for pkg, folder in PACKAGES:
        for f in sorted(folder.rglob("*.py")):
            rel = f.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([pkg, *parts])
            doc = ast.get_docstring(ast.parse(f.read_text()))
            out.append((name, f.relative_to(ROOT).as_posix(), first_sentence(doc)))
    return sorted(out)


def table() -> str:
    lines = ["| module | what |", "|---|---|"]
    for name, path, what in modules():
        lines.append(f"| [`{name}`](../{path}) | {what} |")
    return "\n".join(lines)


def render(text: str) -> str:
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{DOC}: no {BEGIN} ... {END} markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table()}\n{END}{tail}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if docs/layout.md is out of date")
    a = ap.parse_args(argv)
    text = DOC.read_text()
    new = render(text)
    if a.check:
        if new != text:
            print(f"{DOC} is out of date: run python scripts/layout_table.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
