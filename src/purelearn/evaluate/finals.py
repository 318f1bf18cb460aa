"""The end of a search (§3.2): the best few configurations trained again with several new seeds,
so that a user sees whether the best was luck, and committees averaging the outputs of members
that differ by seed (or also by bootstrap sample of the training examples: bagging)."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from ..errors import ConfigError
from ..nn import family_of
from ..search.space import format_value


@dataclass
class FinalRun:
    """One configuration (trial ``trial``'s knobs) trained with each of ``seeds``: each seed's
    validation error (and test error, where the test split was read), and those of their
    committee (the mean of their outputs)."""

    trial: int
    params: dict
    searched: float              # the trial's own value, the one selection picked it on
    seeds: list
    valid: list
    committee_valid: float
    test: list | None = None
    committee_test: float | None = None

    @property
    def mean_std(self) -> tuple[float, float]:
        return _mean_std(self.valid)


@dataclass
class Finals:
    runs: list
    bagging: bool
    committee_valid: float           # every member of every configuration averaged
    committee_test: float | None = None

    def to_dict(self) -> dict:
        return {"runs": [asdict(r) | dict(zip(("valid_mean", "valid_std"), r.mean_std)) for r in self.runs],
                "bagging": self.bagging, "committee_valid": self.committee_valid,
                "committee_test": self.committee_test}

    def lines(self) -> list[str]:
        seeds = len(self.runs[0].seeds)
        kind = "bagged committee (a bootstrap sample each)" if self.bagging else "committee"
        out = [f"the {len(self.runs)} best configurations, {seeds} new seeds each; {kind} = mean of the outputs",
               f"{'trial':>5}  {'searched':>8}  {'valid (mean +- std)':>20}  {'committee':>9}"
               + ("  {:>15}  {:>9}".format("test (mean)", "committee") if self.runs[0].test is not None else "")
               + "  knobs"]
        for r in self.runs:
            mean, std = r.mean_std
            test = (f"  {statistics.fmean(r.test):15.4f}  {r.committee_test:9.4f}" if r.test is not None else "")
            knobs = ", ".join(f"{k}={format_value(v)}" for k, v in r.params.items())
            out.append(f"{r.trial:>5}  {r.searched:8.4f}  {mean:11.4f} +- {std:.4f}  {r.committee_valid:9.4f}{test}  {knobs}")
        best = min(self.runs, key=lambda r: r.mean_std[0])
        single = min(min(r.valid) for r in self.runs)
        out.append(f"committee of all {len(self.runs) * seeds} members: validation error {self.committee_valid:.4f}"
                   + (f", test {self.committee_test:.4f}" if self.committee_test is not None else "")
                   + f"; the best single member {single:.4f}, the best configuration's committee "
                     f"{best.committee_valid:.4f}")
        luck = [r for r in self.runs if r.searched < r.mean_std[0] - 2 * r.mean_std[1]]
        if luck:
            out.append("trial(s) " + ", ".join(str(r.trial) for r in luck) + " searched more than two standard "
                       "deviations below their mean over new seeds: their searched value was partly luck.")
        return out


def _mean_std(values) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def final_seeds(seed: int, count: int) -> list[int]:
    """``count`` new seeds, none of them a trial's (those are below 2**31 from the study's seed)."""
    rng = np.random.default_rng([seed, 3])
    return [int(s) for s in rng.choice(2 ** 31, size=count, replace=False) + 2 ** 31]


def run_finals(study, top: int = 3, seeds: int = 10, bagging: bool = False, evaluate_test: bool = False,
               force: bool = False) -> Finals:
    """Train the ``top`` best configurations of ``study`` with ``seeds`` new seeds each, as one
    batch of populations, on the study's own splits (with ``bagging``, each member on its own
    bootstrap sample of the training examples), and score them and their committees on the
    validation split; with ``evaluate_test``, on the test split too, read once through the
    study's guard (recorded under the best configuration's trial)."""
    from ..train import Member, fit

    for name, value, low in (("top", top, 1), ("seeds", seeds, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"{name} = {value!r} must be a whole number >= {low}.")
    chosen = sorted(study.finished(), key=lambda t: t.rank)[:top]
    if not chosen:
        raise ConfigError(f"study {study.name!r} has no finished trial yet.")
    if evaluate_test:
        study.test_unread(force)
    configs = [_config_of(study, t) for t in chosen]
    for c in configs:
        if c.pretrain.levels:
            raise ConfigError("finals train single networks; this study's configurations pre-train stacks.")
    data = replace(configs[0].data, folds=0, fold=0)          # a cross-validated study's own split
    splits = data.splits()
    new = final_seeds(study.record.settings.get("seed", 0), seeds)
    parts = _bootstraps(splits, new) if bagging else splits
    members = [Member(c.member().model, replace(c.member().train, seed=s), fold=j if bagging else 0)
               for c in configs for j, s in enumerate(new)]
    results = fit(parts, members, device=configs[0].device)
    outputs = [_outputs(r, splits.X_valid) for r in results]
    test = splits.read_test() if evaluate_test else None
    test_outputs = [_outputs(r, test[0], raw=True) for r in results] if test else None
    runs = []
    for i, (trial, config) in enumerate(zip(chosen, configs)):
        own = slice(i * seeds, (i + 1) * seeds)
        spec = results[own][0].member.model
        run = FinalRun(trial.number, dict(trial.params), trial.value, new, [r.best_valid_error for r in results[own]],
                       _error(spec, _committee(outputs[own]), splits.y_valid))
        if test:
            labels = _codes(test[1], splits.classes)
            run.test = [_error(spec, o, labels) for o in test_outputs[own]]
            run.committee_test = _error(spec, _committee(test_outputs[own]), labels)
        runs.append(run)
    spec = results[0].member.model
    finals = Finals(runs, bagging, _error(spec, _committee(outputs), splits.y_valid))
    if test:
        finals.committee_test = _error(spec, _committee(test_outputs), _codes(test[1], splits.classes))
        study.record_test(chosen[0].number, runs[0].committee_test)
    return finals


def _config_of(study, trial):
    from ..execute.objective import apply_params

    return apply_params(study.config(), trial.params, trial.seed)


def _bootstraps(splits, seeds: list[int]) -> list:
    """One bootstrap sample of the training examples per seed (as many, drawn with replacement)."""
    n = len(splits.X_train)
    out = []
    for s in seeds:
        idx = np.random.default_rng([s, 4]).integers(0, n, n)
        out.append(replace(splits, X_train=splits.X_train[idx], y_train=splits.y_train[idx], X_unlabeled=None))
    return out


def _outputs(result, X, raw: bool = False) -> torch.Tensor:
    """A member's outputs for preprocessed (or, ``raw``, as loaded) inputs: class probabilities
    for a softmax, the outputs themselves otherwise."""
    model = result.model
    z = model.scores(X) if raw else family_of(model.spec).predict(model.spec, model.params, X)
    return torch.softmax(z.double(), -1) if getattr(model.spec, "output", None) == "softmax" else z.double()


def _committee(outputs: list) -> torch.Tensor:
    return torch.stack(outputs).mean(0)


def _error(spec, averaged: torch.Tensor, y) -> float:
    """The validation criterion of averaged outputs: misclassification for probabilities,
    else the error of the averaged outputs as the network's (squared error, wrong labels)."""
    from ..nn import example_errors

    y = torch.as_tensor(np.asarray(y))
    if getattr(spec, "output", None) == "softmax":
        return float((averaged.argmax(-1) != y).double().mean())
    return float(example_errors(spec.output, averaged.unsqueeze(0), y.to(averaged.dtype).reshape(len(y), -1)).mean())


def _codes(labels, classes) -> np.ndarray:
    """Test labels as loaded -> class indices (an unseen label matches no class)."""
    labels = np.asarray(labels)
    if classes is None:
        return labels
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index.get(v, -1) for v in labels.tolist()])
