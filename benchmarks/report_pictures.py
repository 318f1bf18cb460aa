"""How long the report's pictures take (§4.2): the Hinton diagram of a 500 x 784 first layer,
each picture of a real mnist5k study's best model, and the whole report.

    python benchmarks/report_pictures.py [--store runs/mnist5k-random.db]

Without --store, a 64-trial random search of examples/mnist5k-random.toml (3 epochs a trial) is
run first in a temporary directory (about half a minute on 2 cores)."""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from common import machine, median
from purelearn.cli import main as cli
from purelearn.execute import Study
from purelearn.report import write_report
from purelearn.report.hinton import hinton_figure
from purelearn.report.pictures import best_model, importance_picture, model_pictures, other_models, render
from purelearn.store import Store

ROOT = Path(__file__).resolve().parents[1]


def hinton_seconds(repeats: int = 3) -> float:
    W = np.random.default_rng(0).normal(size=(500, 784))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fig = hinton_figure(W, "500 x 784")
        fig.savefig(io.BytesIO(), format="png", dpi=100)
        plt.close(fig)
        times.append(time.perf_counter() - start)
    return median(times)


def study_of(store: str | None, scratch: Path) -> Study:
    if store:
        s = Store(store, create=False)
        return Study(s, s.study(s.study_names()[0]))
    db = scratch / "mnist5k.db"
    cli(["tune", str(ROOT / "examples" / "mnist5k-random.toml"), "--trials", "64", "--set", "train.max_epochs=3",
         "--store", str(db)])
    return study_of(str(db), scratch)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store")
    args = parser.parse_args(argv)
    print(machine())
    print(f"Hinton diagram, 500 x 784, drawn and saved: {hinton_seconds():.2f} s (median of 3)")
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        study = study_of(args.store, scratch)
        start = time.perf_counter()
        number, model, data = best_model(study)
        pictures = [importance_picture(study)] + model_pictures(number, model, data, other_models(study, number))
        print(f"{len(study.trials)} trials; best model (trial {number}) and its data loaded, importance computed: "
              f"{time.perf_counter() - start:.2f} s")
        for picture in pictures:
            start = time.perf_counter()
            render(picture, scratch)
            print(f"  {picture.name:16s} {time.perf_counter() - start:5.2f} s")
        start = time.perf_counter()
        write_report(study, scratch / "report")
        print(f"whole report: {time.perf_counter() - start:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
