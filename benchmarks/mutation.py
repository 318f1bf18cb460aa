"""Mutation testing of the search modules: mutmut-style mutations applied one at a time.

Each mutant is one small change to one module: a comparison swapped (< <=, > >=, == !=, in / not
in), an arithmetic operator swapped (+ -, * /, // /), a number n -> n + 1, True <-> False,
and <-> or, a `not` dropped, or a returned value replaced by None. Strings, f-strings and
docstrings are left alone. The change is made to a copy of src/ in a temporary folder (the
worktree is never modified), the given test files run against that copy with
``pytest -x``, and the mutant counts as killed when they fail (or time out).

    python benchmarks/mutation.py [--jobs 2] [--module efficiency|border ...] -- TESTS...

Prints one line per surviving mutant (module, line, what changed) and a score per module.
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = {"efficiency": "src/purelearn/search/efficiency.py", "border": "src/purelearn/search/border.py"}

CMP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
       ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}
BIN = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
       ast.Pow: ast.Mult}


def _skipped(tree):
    """Nodes inside strings / f-strings / docstrings: not mutated."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip.update(id(n) for n in ast.walk(node))
    return skip


def _sites(tree):
    """(node index in ast.walk order, kind, description) for every mutation point."""
    skip = _skipped(tree)
    out = []
    for k, node in enumerate(ast.walk(tree)):
        if id(node) in skip:
            continue
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Compare):
            for j, op in enumerate(node.ops):
                if type(op) in CMP:
                    out.append((k, ("cmp", j), line, f"{type(op).__name__} -> {CMP[type(op)].__name__}"))
        elif isinstance(node, ast.BinOp) and type(node.op) in BIN:
            out.append((k, "bin", line, f"{type(node.op).__name__} -> {BIN[type(node.op)].__name__}"))
        elif isinstance(node, ast.AugAssign) and type(node.op) in BIN:
            out.append((k, "bin", line, f"{type(node.op).__name__}= -> {BIN[type(node.op)].__name__}="))
        elif isinstance(node, ast.BoolOp):
            out.append((k, "bool", line, f"{type(node.op).__name__} -> {'Or' if isinstance(node.op, ast.And) else 'And'}"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            out.append((k, "not", line, "drop `not`"))
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
            out.append((k, "num", line, f"{node.value!r} -> {node.value + 1!r}"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
            out.append((k, "boolc", line, f"{node.value} -> {not node.value}"))
        elif isinstance(node, ast.Return) and node.value is not None:
            out.append((k, "ret", line, "return value -> None"))
    return out


def _mutate(source, k, kind):
    tree = ast.parse(source)
    node = list(ast.walk(tree))[k]
    if isinstance(kind, tuple):
        node.ops[kind[1]] = CMP[type(node.ops[kind[1]])]()
    elif kind == "bin":
        node.op = BIN[type(node.op)]()
    elif kind == "bool":
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif kind == "not":
        # replace the UnaryOp by its operand in its parent
        for parent in ast.walk(tree):
            for field, value in ast.iter_fields(parent):
                if value is node:
                    setattr(parent, field, node.operand)
                elif isinstance(value, list) and any(v is node for v in value):
                    setattr(parent, field, [node.operand if v is node else v for v in value])
    elif kind == "num":
        node.value = node.value + 1
    elif kind == "boolc":
        node.value = not node.value
    elif kind == "ret":
        node.value = None
    return ast.unparse(ast.fix_missing_locations(tree))


def _run_one(module_path, mutated, tests, timeout):
    with tempfile.TemporaryDirectory(prefix="mutant-") as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(ROOT / "src", src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        (Path(tmp) / module_path).write_text(mutated)
        env = dict(os.environ, PYTHONPATH=str(src), PYTHONDONTWRITEBYTECODE="1")
        cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests]
        try:
            r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return "killed (timeout)"
        return "survived" if r.returncode == 0 else "killed"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--module", action="append", choices=sorted(MODULES))
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("tests", nargs="+")
    a = ap.parse_args()
    for name in a.module or sorted(MODULES):
        path = MODULES[name]
        source = (ROOT / path).read_text()
        sites = _sites(ast.parse(source))
        baseline = ast.unparse(ast.parse(source))
        mutants = [(line, desc, m) for k, kind, line, desc in sites
                   if (m := _mutate(source, k, kind)) != baseline]
        with ThreadPoolExecutor(a.jobs) as pool:
            results = list(pool.map(lambda t: _run_one(path, t[2], a.tests, a.timeout), mutants))
        killed = sum(r.startswith("killed") for r in results)
        for (line, desc, _), r in zip(mutants, results):
            if r == "survived":
                print(f"SURVIVED {name}.py:{line}: {desc}    | {source.splitlines()[line - 1].strip()}")
        print(f"{name}: {killed} / {len(mutants)} killed")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
