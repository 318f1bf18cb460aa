"""Mutation testing: mutmut-style mutations applied one at a time to a module of purelearn.

Each mutant is one small change to one module: a comparison swapped (< <=, > >=, == !=, in / not
in), an arithmetic operator swapped (+ -, * /, // /), a number n -> n + 1, True <-> False,
and <-> or, a `not` dropped, or a returned value replaced by None. Strings, f-strings and
docstrings are left alone. The change is made to a copy of src/ in a temporary folder (the
worktree is never modified), the given tests run against that copy with ``pytest -x``, and the
mutant counts as killed when they fail (or time out).

Each mutant's tests run in a process forked from one that has already imported torch, NumPy,
SQLAlchemy and pytest (seconds per mutant on two cores), and imports purelearn from the copy.

    python benchmarks/mutation.py [--jobs 2] --module search/border [--module optim/base ...] TESTS...

Prints one line per surviving mutant (module, line, what changed) and a score per module.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "purelearn"

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


def _start(module_path, mutated, tests):
    """Forks a child running the tests on a copy of src/ holding the mutant: (pid, its folder)."""
    tmp = tempfile.mkdtemp(prefix="mutant-")
    src = Path(tmp) / "src"
    shutil.copytree(ROOT / "src", src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (Path(tmp) / module_path).write_text(mutated)
    pid = os.fork()
    if pid == 0:
        _child(src, tests)
    return pid, tmp


def _run_all(module_path, mutants, tests, jobs, timeout) -> list[str]:
    """'killed', 'killed (timeout)' or 'survived' for each mutant, ``jobs`` at a time. Forks
    happen from this (the only) thread, never while another thread holds a lock."""
    results, running, todo = [None] * len(mutants), {}, list(enumerate(mutants))
    while todo or running:
        while todo and len(running) < jobs:
            i, mutated = todo.pop(0)
            pid, tmp = _start(module_path, mutated, tests)
            running[pid] = (i, tmp, time.monotonic() + timeout)
        time.sleep(0.05)
        for pid, (i, tmp, deadline) in list(running.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == 0 and time.monotonic() < deadline:
                continue
            if done == 0:
                os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                results[i] = "killed (timeout)"
            else:
                results[i] = "survived" if os.waitstatus_to_exitcode(status) == 0 else "killed"
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)        # anything the tests left running
            shutil.rmtree(tmp, ignore_errors=True)
            del running[pid]
    return results


def _child(src: Path, tests: list[str]) -> None:
    """Runs in the fork: its own process group (so a timeout kills what the tests started),
    output discarded, purelearn imported from the mutant's copy."""
    code = 1
    try:
        os.setpgid(0, 0)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        sys.path.insert(0, str(src))
        os.environ["PYTHONPATH"] = str(src)        # for the processes the tests start
        os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
        import pytest

        code = int(pytest.main(["-q", "-x", "-p", "no:cacheprovider", *tests]))
    finally:
        os._exit(code)


def _module_path(name: str) -> str:
    path = PACKAGE / f"{name.removesuffix('.py')}.py"
    if not path.is_file():
        raise SystemExit(f"no module {name!r} under src/purelearn (e.g. search/border, optim/base)")
    return str(path.relative_to(ROOT))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--module", action="append", required=True, help="e.g. search/border, optim/base")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--line", type=int, nargs=2, metavar=("FIRST", "LAST"), help="only mutate these lines")
    ap.add_argument("tests", nargs="+")
    a = ap.parse_args()
    # Imported once here, so each fork starts with them (and never with purelearn).
    import numpy  # noqa: F401
    import pytest  # noqa: F401
    import sqlalchemy  # noqa: F401
    import torch  # noqa: F401

    os.chdir(ROOT)
    for name in a.module:
        path = _module_path(name)
        source = (ROOT / path).read_text()
        sites = _sites(ast.parse(source))
        baseline = ast.unparse(ast.parse(source))
        mutants = [(line, desc, m) for k, kind, line, desc in sites
                   if (a.line is None or a.line[0] <= line <= a.line[1])
                   and (m := _mutate(source, k, kind)) != baseline]
        if _run_all(path, [baseline], a.tests, 1, a.timeout) != ["survived"]:
            raise SystemExit(f"the tests fail on the unmutated {name}: fix them first")
        started = time.perf_counter()
        results = _run_all(path, [m for _, _, m in mutants], a.tests, a.jobs, a.timeout)
        killed = sum(r.startswith("killed") for r in results)
        for (line, desc, _), r in zip(mutants, results):
            if r == "survived":
                print(f"SURVIVED {name}.py:{line}: {desc}    | {source.splitlines()[line - 1].strip()}")
        print(f"{name}: {killed} / {len(mutants)} killed ({time.perf_counter() - started:.0f} s)")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
