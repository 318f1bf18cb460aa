"""One self-contained HTML page (pictures embedded) plus the PNGs, for a study."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import matplotlib.pyplot as plt

from ..search.space import format_value
from .pictures import pictures_html
from .plots import FIGURES
from .tree import screening_html, tree_figure, tree_html


def write_report(study, out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    images = {}
    layerwise = study.record.strategy == "layerwise"
    for name, make in (FIGURES | ({"levels searched": tree_figure} if layerwise else {})).items():
        fig = make(study)
        path = out / f"{name.replace(' ', '-')}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        images[name] = base64.b64encode(path.read_bytes()).decode()
    page = out / "index.html"
    page.write_text(_page(study, images, pictures_html(study, out)))
    return page


def _pruning_html(study) -> str:
    """How the study pruned (§3.3.1), and how its pruned trials count."""
    said = study.record.settings.get("prune", {}).get("said")
    if not said:
        return ""
    return (f"<p>{html.escape(said)}. Pruned trials are never the best; the efficiency curve counts each at its "
            "best validation error before it stopped.</p>")


def _page(study, images: dict, model_pictures: str = "") -> str:
    e = html.escape
    trials = study.trials
    best = study.best
    finished = sorted(study.finished(), key=lambda t: t.value)
    knobs = list(dict.fromkeys(k for t in trials for k in t.params))
    rows = "".join(
        f"<tr><td>{t.number}</td><td>{t.value:.4f}</td><td>{'' if t.seconds is None else f'{t.seconds:.1f}'}</td>"
        + "".join(f"<td>{e(format_value(t.params.get(k, '')))}</td>" for k in knobs) + "</tr>" for t in finished[:20])
    counts = {s: sum(t.status == s for t in trials)
              for s in ("complete", "failed", "diverged", "interrupted", "pretrained", "pruned")}
    tree = ""
    if study.record.strategy == "layerwise":
        tree = ("<h2>Levels searched (Algorithm 1)</h2><p>Each trial under the trial it was built on, with its "
                "score (a level's: its probe's validation error) and its own settings; in bold, the K best of "
                f"each level, kept and built on.</p>{tree_html(study)}{screening_html(study)}")
    warnings = "".join(f"<li>{e(w)}</li>" for w in study.warnings()) or "<li>none</li>"
    expansions = "".join(f"<li>{e(x['knob'])}: widened {e(x['side'])}ward from {x['old']} to {x['new']} after "
                         f"{x['after_trials']} trials</li>" for x in study.record.settings.get("expansions", []))
    tests = study.store.test_evaluations(study.record)
    test = "".join(f"<li>trial {t['trial']}: test error {t['value']:.4f}{' (forced re-read)' if t['forced'] else ''}"
                   "</li>" for t in tests) or "<li>not read yet</li>"
    pictures = "".join(f'<h2>{e(name.capitalize())}</h2><img alt="{name}" src="data:image/png;base64,{b64}">'
                       for name, b64 in images.items())
    best_line = (f"best validation error <b>{best.value:.4f}</b> (trial {best.number})" if best else "no result yet")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>purelearn study {e(study.name)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 6px;font-size:13px}}img{{max-width:100%}}</style></head>
<body><h1>Study {e(study.name)}</h1>
<p>{e(study.record.strategy)} search; {len(trials)} trials: {counts['complete']} complete, {counts['failed']} failed,
{counts['diverged']} diverged, {counts['interrupted']} interrupted{f", {counts['pretrained']} levels pre-trained" if counts['pretrained'] else ""}{f", {counts['pruned']} pruned" if counts['pruned'] else ""}; {best_line}.</p>
{_pruning_html(study)}
<p>{e(study.plateau()['message'])}</p>
<h2>Warnings</h2><ul>{warnings}</ul>
<h2>Diagnosis of the best trial</h2>{_diagnosis_html(best)}
{f'<h2>Widened intervals</h2><ul>{expansions}</ul>' if expansions else ''}
<h2>Test split (read once)</h2><ul>{test}</ul>
{tree}
{pictures}
{model_pictures}
<h2>Best trials</h2><table><tr><th>trial</th><th>valid error</th><th>seconds</th>
{''.join(f'<th>{e(k)}</th>' for k in knobs)}</tr>{rows}</table>
</body></html>
"""


def _diagnosis_html(best) -> str:
    """The best trial's curves read as §4.1 reads them: under-fitting, over-fitting or fine, the
    numbers behind the verdict, and the chapter's remedies."""
    from ..diagnose import diagnose

    e = html.escape
    if best is None:
        return "<p>no finished trial yet.</p>"
    d = diagnose(best.curve)
    remedies = "".join(f"<li>{e(text)} ({e(section)})</li>" for section, text in d.remedies)
    evidence = "".join(f"<tr><td>{e(k)}</td><td>{e(format_value(v))}</td></tr>" for k, v in d.evidence.items())
    return (f"<p>Trial {best.number}: <b>{e(d.verdict)}</b>: {e(d.reason)}.</p>"
            + (f"<p>Remedies:</p><ul>{remedies}</ul>" if remedies else "")
            + (f"<table><tr><th>evidence</th><th>value</th></tr>{evidence}</table>" if evidence else ""))
