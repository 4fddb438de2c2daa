#!/usr/bin/env python3
"""The README's headline table, generated from result files (so every number in it is found in
the file it came from), between the ``<!-- BEGIN headline -->`` / ``<!-- END headline -->`` markers.

    python scripts/headline_table.py                  # rewrite README.md's table
    python scripts/headline_table.py --check          # exit 1 if it is out of date
    python scripts/headline_table.py --spec S.json --doc OTHER.md

The rows are data, not code: ``results/headline.json`` lists, per row, the ``result`` (a label),
the ``source`` file (repository-relative JSON), ``values`` (name -> path into that JSON), optional
``derived`` (name -> arithmetic over the values), the ``value`` template (``str.format`` over
values and derived names) and the ``command`` that produced the source. A path is dotted keys,
``[i]`` list indices, or ``[key=value,...]`` to select the list element whose fields match
(e.g. ``rows[case=nb201_N128,impl=ext].ms``). Standard library only.
"""
from __future__ import annotations

import argparse
import ast
import json
import operator
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- BEGIN headline -->", "<!-- END headline -->"
_TOKEN = re.compile(r"([^.\[\]]+)|\[([^\]]*)\]")
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.Pow: operator.pow, ast.USub: operator.neg}


def lookup(obj, path: str, where: str):
    """The value at ``path`` in ``obj`` (see the module docstring); KeyError naming the step."""
    for name, sel in _TOKEN.findall(path):
        if name:
            if not isinstance(obj, dict) or name not in obj:
                raise KeyError(f"{where}: no key {name!r} on the way to {path!r}")
            obj = obj[name]
        elif sel.lstrip("-").isdigit():
            obj = obj[int(sel)]
        else:
            want = dict(kv.split("=", 1) for kv in sel.split(","))
            hits = [x for x in obj if all(str(x.get(k)) == v for k, v in want.items())]
            if len(hits) != 1:
                raise KeyError(f"{where}: [{sel}] matches {len(hits)} elements in {path!r}")
            obj = hits[0]
    return obj


def arithmetic(expr: str, names: dict) -> float:
    """``expr`` (numbers, names, + - * / **, parentheses) over ``names``."""
    def ev(n):
        if isinstance(n, ast.Expression):
            return ev(n.body)
        if isinstance(n, ast.Constant) and isinstance(n.value, (int, float)):
            return n.value
        if isinstance(n, ast.Name):
            return names[n.id]
        if isinstance(n, ast.BinOp) and type(n.op) in _OPS:
            return _OPS[type(n.op)](ev(n.left), ev(n.right))
        if isinstance(n, ast.UnaryOp) and type(n.op) in _OPS:
            return _OPS[type(n.op)](ev(n.operand))
        raise ValueError(f"unsupported expression {expr!r}")
    return ev(ast.parse(expr, mode="eval"))


def table(spec_path: Path) -> str:
    spec = json.loads(spec_path.read_text())
    lines = [spec.get("caption", ""), "", "| result | value | source (command) |", "|---|---|---|"]
    for row in spec["rows"]:
        src = ROOT / row["source"]
        data = json.loads(src.read_text())
        names = {k: lookup(data, p, row["source"]) for k, p in row["values"].items()}
        for k, e in row.get("derived", {}).items():
            names[k] = arithmetic(e, names)
        value = row["value"].format(**names)
        lines.append(f"| {row['result']} | {value} | [{row['source']}]({row['source']}) (`{row['command']}`) |")
    return "\n".join(lines).lstrip("\n")


def render(text: str, spec: Path, doc: Path) -> str:
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{doc}: no {BEGIN} ... {END} markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table(spec)}\n{END}{tail}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", default=str(ROOT / "results" / "headline.json"))
    ap.add_argument("--doc", default=str(ROOT / "README.md"))
    ap.add_argument("--check", action="store_true", help="exit 1 if the table is out of date")
    a = ap.parse_args(argv)
    doc = Path(a.doc)
    text = doc.read_text()
    new = render(text, Path(a.spec), doc)
    if a.check:
        if new != text:
            print(f"{doc}: the headline table is out of date; run python scripts/headline_table.py",
                  file=sys.stderr)
            return 1
        return 0
    doc.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
