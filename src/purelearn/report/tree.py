"""The tree a layer-wise search (Algorithm 1, §3.3.4) grew: each level's trials on their
parents, their scores (the probe's validation error, or the level's criterion), and which were
kept as the K best to build on."""

from __future__ import annotations

import html

import matplotlib.pyplot as plt

from ..search import make_strategy, parse_space
from ..search.layerwise import FINETUNE, LEVEL, PARENT, PLACE, SCREEN
from ..search.space import format_value


def stages(study) -> list[list[dict]]:
    """Per stage (level 1, 2, ..., then the fine-tuning), its finished trials: number, parent,
    value, the stage's own settings (those its parent didn't have) and whether it was kept."""
    settings = study.record.settings
    strategy = make_strategy("layerwise", parse_space(settings["initial_space"]), settings["seed"],
                             **settings.get("options", {}))
    trials = {t.number: t for t in study.trials}
    for t in study.trials:
        if t.status in ("complete", "failed", "diverged", "pretrained"):
            strategy.replay(t.number, t.params, t.value if t.status != "failed" else None)
    kept = {n for s in strategy.history for n in s}
    out = [[] for _ in range(strategy.levels + 1)]
    for t in study.trials:
        level = t.params.get(LEVEL)
        if SCREEN in t.params:
            continue                       # screening trials: see screening()
        stage = strategy.levels if level == FINETUNE else level - 1
        parent = trials.get(t.params.get(PARENT))
        own = {k: v for k, v in t.params.items() if k not in PLACE
               and (parent is None or parent.params.get(k) != v)}
        out[stage].append({"number": t.number, "parent": t.params.get(PARENT), "value": t.value, "status": t.status,
                           "settings": own, "kept": t.number in kept})
    return out


def screening(study) -> list[dict]:
    """Per screened level: the candidates scored both by screening and in full, and the rank
    correlation (Spearman's) of the two scores: whether screening was trustworthy on this data."""
    from scipy.stats import spearmanr

    full = {_place(t.params): t.value for t in study.trials if SCREEN not in t.params and t.value is not None}
    pairs: dict = {}
    for t in study.trials:
        if SCREEN in t.params and t.value is not None and _place(t.params) in full:
            pairs.setdefault(t.params[LEVEL], []).append((t.value, full[_place(t.params)]))
    out = []
    for level, both in sorted(pairs.items()):
        rho = spearmanr(*zip(*both)).statistic if len(both) > 2 else None
        out.append({"level": level, "pairs": both, "spearman": None if rho != rho else rho})
    return out


def _place(params: dict) -> str:
    return repr(sorted((k, v) for k, v in params.items() if k != SCREEN))


def screening_html(study) -> str:
    rows = []
    for s in screening(study):
        rho = "too few to tell" if s["spearman"] is None else f"Spearman's rho = {s['spearman']:.2f}"
        rows.append(f"<li>level {s['level']}: {len(s['pairs'])} candidates trained in full after screening; "
                    f"their screening scores against their full scores: {rho}</li>")
    return f"<h3>Screening</h3><ul>{''.join(rows)}</ul>" if rows else ""


def tree_html(study) -> str:
    """The tree as nested lists, the kept trials in bold."""
    by_parent: dict = {}
    for stage in stages(study):
        for node in stage:
            by_parent.setdefault(node["parent"], []).append(node)

    def items(parent) -> str:
        rows = []
        for node in by_parent.get(parent, []):
            value = "failed" if node["value"] is None else f"{node['value']:.4f}"
            text = (f"trial {node['number']}: {value} · " + ", ".join(
                f"{html.escape(k)}={html.escape(format_value(v))}" for k, v in node["settings"].items()))
            text = f"<b>{text}</b>" if node["kept"] else text
            rows.append(f"<li>{text}{items(node['number'])}</li>")
        return f"<ul>{''.join(rows)}</ul>" if rows else ""

    return items(None)


def tree_figure(study):
    """Each stage's scores, a line from every trial to its parent; kept trials filled."""
    fig, ax = plt.subplots(figsize=(6.4, 4))
    found = stages(study)
    where = {}
    for x, stage in enumerate(found):
        for node in stage:
            if node["value"] is not None:
                where[node["number"]] = (x, node["value"])
    for stage in found:
        for node in stage:
            if node["number"] in where and node["parent"] in where:
                (x0, y0), (x1, y1) = where[node["parent"]], where[node["number"]]
                ax.plot([x0, x1], [y0, y1], color="0.7", lw=0.8, zorder=1)
    for x, stage in enumerate(found):
        for node in stage:
            if node["number"] in where:
                ax.scatter(*where[node["number"]], s=30, zorder=2, color="C0" if node["kept"] else "white",
                           edgecolors="C0")
    ax.set_xticks(range(len(found)), [f"level {i + 1}" for i in range(len(found) - 1)] + ["fine-tuned"])
    ax.set_ylabel("validation error (levels: the probe's)")
    ax.set_title("layer-wise search: filled points were kept (the K best) and built on")
    fig.tight_layout()
    return fig
