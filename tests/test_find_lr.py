"""`purelearn train CONFIG --find-lr`: the learning-rate search of §2.1 before training."""

import json
import re
from pathlib import Path

import numpy as np

from purelearn.cli import main

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "examples" / "digits-mlp.toml")
QUICK = ["--set", "train.max_epochs=1", "--set", "model.hidden=[16]"]


def test_find_lr_prints_the_search_and_trains_with_its_rate(capsys):
    assert main(["train", DIGITS, "--find-lr", "--json", *QUICK]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    search = summary["lr_search"]
    runs = search["runs"]
    # the path: up from 1 by factors of 3 while stable, ending at the first that diverged
    assert runs[0]["rate"] == 1.0 and not runs[0]["diverged"] and runs[-1]["diverged"]
    assert [r["rate"] for r in runs] == [3.0 ** k for k in range(len(runs))]
    assert not any(r["diverged"] for r in runs[:-1])
    assert search["largest_stable"] == runs[-2]["rate"] and search["rate"] == search["largest_stable"] / 2
    assert summary["config"]["train"]["lr"] == search["rate"]           # trained with the recommendation
    # every rate tried is printed with its criterion at the start and after the short run
    err = captured.err
    for r in runs:
        end = "(nan|inf)" if r["end_criterion"] is None else f"{r['end_criterion']:.4f}"
        row = rf"^\s+{r['rate']:.4g}\s+{r['start_criterion']:.4f}\s+{end}\s+{'diverged' if r['diverged'] else 'stable'}$"
        assert re.search(row, err, re.MULTILINE), row
    assert f"training with lr = {search['rate']:.4g}" in err


def test_without_the_flag_the_configured_rate_is_used(capsys):
    assert main(["train", DIGITS, "--json", *QUICK]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert "lr_search" not in summary and summary["config"]["train"]["lr"] == 0.05
    assert "learning-rate search" not in captured.err


def test_a_search_that_finds_no_stable_rate_is_a_clear_error(tmp_path, capsys):
    # inputs of size 1e6, not standardized: every rate down to 1/3^12 diverges
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3)) * 1e6
    np.savez(tmp_path / "wild.npz", X=X, y=X @ np.array([1.0, 2.0, 3.0]))
    cfg = tmp_path / "wild.toml"
    cfg.write_text(f'[data]\nname = "{tmp_path / "wild.npz"}"\npreprocess = []\n[model]\nhidden = []\n'
                   '[train]\nmax_epochs = 1\n')
    assert main(["train", str(cfg), "--find-lr"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("purelearn: error: find_learning_rate: every rate down to") and "Traceback" not in err
