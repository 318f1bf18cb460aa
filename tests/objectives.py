"""Objectives that worker processes can import by name (spawned workers unpickle by module)."""

import math
import os
import signal


def quadratic(params, report):
    for i in range(5):
        report(100 * (i + 1), (params["x"] - 0.3) ** 2 + 0.1 / (i + 1))
    return (params["x"] - 0.3) ** 2 + (math.log10(params["lr"]) + 2) ** 2


def crashy(params, report):
    """Kills its own process for x > 0.8, raises for x < 0.1: both must fail only that trial."""
    if params["x"] > 0.8:
        os.kill(os.getpid(), signal.SIGKILL)
    if params["x"] < 0.1:
        raise RuntimeError("bad luck")
    return params["x"]


def marked_model(number: int) -> bytes:
    """A one-layer model whose bias says which trial it came from."""
    import torch

    import purelearn as pl

    return pl.Model(pl.MLP(hidden=(), output="softmax"), {"W0": torch.zeros(2, 1), "b0": torch.tensor([[number, 0.]])},
                    [], None, 1).to_bytes()


def _tied_run_batch(self, jobs, pruning=None):
    """Trials 0 and 1 tie at 0.2, and trial 0 takes a second longer: it finishes last."""
    import time

    from purelearn.execute import Outcome

    for number, _, _ in jobs:
        if number == 0:
            time.sleep(1.0)
        yield number, Outcome("complete", {0: 0.2, 1: 0.2}.get(number, 0.5), model=marked_model(number))


def tied():
    """An objective whose trials hand back models (as a config's do), with a tie."""
    from purelearn.execute import FunctionObjective

    cls = type("Tied", (FunctionObjective,), {"run_batch": _tied_run_batch, "__module__": __name__})
    globals()["Tied"] = cls
    return cls(fn=None)


def dies_once(params, report):
    """The first attempt of each trial kills its own worker (a mark in $MARKS says it was
    tried); the re-run completes."""
    mark = os.path.join(os.environ["MARKS"], f"{params['x']:.12f}")
    if not os.path.exists(mark):
        open(mark, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return params["x"]


def slow(params, report):
    import time

    time.sleep(0.3)
    return params["x"]


class _Listens:
    """A batch objective of one trial whose pruner waits (up to 20 s) to hear ``wanted`` things
    from other workers."""

    def __init__(self, wanted: int):
        self.wanted = wanted

    def prepare(self):
        pass

    def _wait(self, pruner, heard) -> None:
        import time

        deadline = time.monotonic() + 20
        while heard(pruner) < self.wanted and time.monotonic() < deadline:
            pruner.catch_up()
            time.sleep(0.01)


class HearsNews(_Listens):
    """Waits until its pruner has heard of ``wanted`` finished trials, then 0.3 s more, and
    returns how many it heard of."""

    def run_batch(self, jobs, pruning=None):
        import time

        from purelearn.execute.objective import Outcome
        from purelearn.search.pruning import Pruner

        pruner = Pruner(*pruning)
        self._wait(pruner, lambda p: len(p.history))
        time.sleep(0.3)
        pruner.catch_up()                  # and what came after
        for number, _, _ in jobs:
            yield number, Outcome("complete", float(len(pruner.history)))


class SharesValues(_Listens):
    """Shares a value at 100 examples (its trial number as a tenth), waits until its pruner has
    heard of ``wanted`` trials training elsewhere, and returns the values heard as one number
    (their sum)."""

    def run_batch(self, jobs, pruning=None):
        import numpy as np

        from purelearn.execute.objective import Outcome
        from purelearn.search.pruning import Pruner

        pruner = Pruner(*pruning)
        (number, _, _), = jobs
        pruner.judge(100, 0, np.array([number / 10]), epoch=100, who=[number])
        self._wait(pruner, lambda p: len(p.running))
        yield number, Outcome("complete", sum(best[-1] for _, best in pruner.running.values()))


def reports_late_if_hopeless(params, report):
    """Trial x = 0.1 reports 0.1 at once and finishes a second later; trial x = 0.9 reports 0.9
    after half a second, while the first still trains, then would report 10 times more."""
    import time

    if params["x"] > 0.5:
        time.sleep(0.5)
    for i in range(1, 11):
        report(100 * i, params["x"])
        time.sleep(0.1)
    return params["x"]
