"""Reading knobs written in a TOML config, without ``eval``.

    "train.lr" = "loguniform(1e-4, 1)"
    "model.activation" = 'choice("tanh", "rectifier", weights=[2, 1])'
    "model.units_2" = "intloguniform(16, 1024) if model.layers >= 2"
    "train.momentum" = "uniform(0, 0.99, hard=[0, 1])"
    "train.batch_size" = 32                      # a plain value is a fixed knob
"""

from __future__ import annotations

import ast
import math
import re

from ..errors import ConfigError, unknown
from .space import Choice, Dimension, Fixed, IntLogUniform, IntUniform, LogUniform, Space, Uniform, When

FORMS = {"loguniform": LogUniform, "uniform": Uniform, "intuniform": IntUniform,
         "intloguniform": IntLogUniform, "choice": Choice, "fixed": Fixed}
# Bounds no search may cross, for knobs whose meaning fixes them (a rate can't be negative, a
# fraction stays in [0, 1], a layer has at least one unit); ``hard=[lo, hi]`` narrows them further.
KNOWN_HARD = {"train.lr": (0.0, math.inf), "train.momentum": (0.0, 0.999), "train.l1": (0.0, math.inf),
              "train.l2": (0.0, math.inf), "train.sparsity_coef": (0.0, math.inf),
              "train.sparsity_target": (1e-6, 1 - 1e-6), "train.batch_size": (1, math.inf),
              "train.patience": (1, math.inf), "train.tau": (1.0, math.inf), "train.alpha": (1e-6, math.inf),
              "train.improvement": (0.0, 0.999), "train.adaptive_tau": (0.0, 0.999),
              "model.layers": (1, math.inf), "model.units": (1, math.inf), "model.init_scale": (1e-6, math.inf),
              "data.valid": (0.01, 0.9), "data.test": (0.0, 0.9)}
_CONDITION = re.compile(r"^(?P<dim>.*\))\s+if\s+(?P<knob>[\w.]+)\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<value>.+)$")


def _literal(node: ast.AST, text: str):
    """A constant, a list of constants, or the names inf / true / false — nothing else."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _literal(node.operand, text)
        if isinstance(v, (int, float)):
            return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e, text) for e in node.elts]
    if isinstance(node, ast.Name) and node.id in ("inf", "true", "false"):     # True and False are constants
        return {"inf": math.inf, "true": True, "false": False}[node.id]
    raise ConfigError(f"knob {text!r}: only numbers, strings, lists and inf may appear as arguments.")


def parse_dimension(name: str, value) -> Dimension:
    """One knob from its TOML value."""
    if not isinstance(value, str) or "(" not in value:
        return Fixed(value)
    text = value.strip()
    when = None
    m = _CONDITION.match(text)
    if m:
        text = m.group("dim")
        when = When(m.group("knob"), m.group("op"), _literal(_parse(m.group("value"), value), value))
    call = _parse(text, value)
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
        raise ConfigError(f"knob {name!r} = {value!r}: write a form like loguniform(1e-4, 1) or "
                          f"choice(\"tanh\", \"rectifier\"); forms: {', '.join(FORMS)}.")
    form = call.func.id
    if form not in FORMS:
        raise unknown(f"search form in knob {name!r}", form, FORMS)
    args = [_literal(a, value) for a in call.args]
    kwargs = {k.arg: _literal(k.value, value) for k in call.keywords}
    allowed = {"choice": {"weights"}, "fixed": set()}.get(form, {"hard"})
    if set(kwargs) - allowed:
        raise ConfigError(f"knob {name!r}: {form}() takes no argument {sorted(set(kwargs) - allowed)[0]!r}"
                          + (f"; allowed: {', '.join(sorted(allowed))}." if allowed else "."))
    try:
        if form == "choice":
            return Choice(tuple(args), tuple(kwargs["weights"]) if "weights" in kwargs else None, when=when)
        if form == "fixed":
            if len(args) != 1:
                raise TypeError
            return Fixed(args[0], when=when)
        if "hard" in kwargs:
            kwargs["hard"] = tuple(kwargs["hard"])
        elif name in KNOWN_HARD or re.match(r"^model\.units_\d+$", name):
            kwargs["hard"] = KNOWN_HARD.get(name, (1, math.inf))
        if len(args) != 2 or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
            raise TypeError
        return FORMS[form](*args, **kwargs, when=when)
    except TypeError:
        raise ConfigError(f"knob {name!r} = {value!r}: {form} takes "
                          f"{'values' if form == 'choice' else 'one value' if form == 'fixed' else 'two numbers (low, high)'}."
                          ) from None
    except ConfigError as e:
        raise ConfigError(f"knob {name!r}: {e}") from None


def _parse(text: str, original: str) -> ast.AST:
    try:
        return ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise ConfigError(f"knob {original!r} can't be read; write e.g. loguniform(1e-4, 1).") from None


def parse_space(table: dict) -> Space:
    """A Space from the ``[search.space]`` table (knob name -> form)."""
    if not isinstance(table, dict) or not table:
        raise ConfigError("[search.space] is missing or empty: list the knobs to search, e.g. "
                          "\"train.lr\" = \"loguniform(1e-4, 1)\".")
    return Space({name: parse_dimension(name, v) for name, v in table.items()})


__all__ = ["parse_dimension", "parse_space"]
