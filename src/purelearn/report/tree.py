"""The tree a layer-wise search (Algorithm 1, §3.3.4) grew: each level's trials on their
parents, their scores (the probe's validation error, or the level's criterion), and which were
kept as the K best to build on."""

from __future__ import annotations

import html

import matplotlib.pyplot as plt

from ..search import make_strategy, parse_space
from ..search.layerwise import FINETUNE, LEVEL, PARENT
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
        stage = strategy.levels if level == FINETUNE else level - 1
        parent = trials.get(t.params.get(PARENT))
        own = {k: v for k, v in t.params.items() if k not in (LEVEL, PARENT)
               and (parent is None or parent.params.get(k) != v)}
        out[stage].append({"number": t.number, "parent": t.params.get(PARENT), "value": t.value, "status": t.status,
                           "settings": own, "kept": t.number in kept})
    return out


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
