"""Training a population of P >= 1 members at once (§2.1, §3.1.1).

Parameters are stacked along a leading member dimension and every numeric hyper-parameter is a
[P] tensor, so one batched forward/backward/update trains all members. The loop names no layer
and no model: the members' family (``nn.family``) draws and stacks their parameters, gives the
training signal on a minibatch (for plain SGD, a fused step with the backward pass written out:
the MLP's, the auto-encoder's and the RBM's CD-k; autograd for the other rules and the
penalties) and the validation criterion per example. Each member draws its own
initialization and example order from its own seed, so it ends the same alone or in any
population. Members early-stop or diverge on their own and then leave the batch (the stacked
tensors are compacted), so a long-lived member doesn't keep the others' slots computing. With Polyak averaging, validation sees the mean
of the iterates from each member's burn-in on (``optim.polyak_start``).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from .. import optim
from ..nn.family import family_of
from .early_stopping import Patience, significant
from .hyper import Member
from .monitor import Monitor
from .replay import Replay
from .result import Result

# A training loss above its limit diverges only at this many validations in a row that set no new
# best validation error. At large rates the loss often jumps to 10-30x its start in the first
# epoch while the validation error already falls, and comes back: on mnist5k, rates 0.2-1 (64
# trainings), stopping at the first such validation lost 3 that end below 0.06, at two none; a
# member that truly diverged (stuck at chance) costs one validation more.
STRIKES = 2


class Data:
    """The splits as tensors on the training device, moved there once for the whole run (§5.1).

    An input that is zero in every training example (MNIST's border pixels: 16% of them) gives
    its first-layer weights a gradient of exactly zero, so training never needs it: the inputs
    are reordered, those that ever vary first (``columns``), and the training inputs keep only
    those (``n_active``). The validation inputs keep them all, in the same order, since a
    validation example may light a pixel no training example did; the weights of such inputs
    keep their initial values (or only decay) in every way of training. Below LEAVE_OUT of the
    inputs it doesn't pay: the first layer's products then run on a strided view of the weights
    (digits, 6% of inputs always zero: 8% slower; MNIST, 16%: 5% faster). ``leave_out=False``
    keeps every input (a family that reconstructs its input must see them all).
    ``unlabeled``: the training inputs include the unlabeled ones (for families that learn
    their own inputs; ``y_train`` then covers only the labeled).

    ``splits`` may be a list: the K folds of a cross-validation (``data.folds``), each with its
    own preprocessing, of equal sizes. Their training parts are concatenated (a member of fold
    k draws its examples from the k-th block), and so are their validation parts (a member
    validates on its block): members that differ only in their fold share one population."""

    LEAVE_OUT = 0.1

    def __init__(self, splits, device: torch.device, leave_out: bool = True, unlabeled: bool = False):
        folds = list(splits) if isinstance(splits, (list, tuple)) else [splits]
        splits = folds[0]
        inputs = [s.inputs() if unlabeled else s.X_train for s in folds]
        if len({(len(x), len(s.X_train), len(s.X_valid)) for x, s in zip(inputs, folds)}) > 1:
            raise ValueError("the folds of one Data must have training and validation parts of equal sizes")
        self.folds, self.n_valid, self._n_train = len(folds), len(splits.X_valid), len(inputs[0])
        ydtype = torch.int64 if splits.task == "classification" else torch.float32
        X_train = np.concatenate(inputs)
        X_valid = np.concatenate([s.X_valid for s in folds])
        active = (X_train != 0).any(0)
        worth = leave_out and (~active).mean() >= self.LEAVE_OUT   # not 1 - mean: 1 - 0.9 < 0.1 in floats
        self.columns = np.argsort(~active, kind="stable") if worth else None
        self.n_active = int(active.sum()) if worth else len(active)
        if self.columns is not None:
            X_train, X_valid = X_train[:, self.columns[:self.n_active]], X_valid[:, self.columns]
        self.X_train = torch.as_tensor(np.ascontiguousarray(X_train), device=device)
        self.y_train = torch.as_tensor(np.concatenate([s.y_train for s in folds]), dtype=ydtype, device=device)
        self.X_valid = torch.as_tensor(np.ascontiguousarray(X_valid), device=device)
        self.y_valid = torch.as_tensor(np.concatenate([s.y_valid for s in folds]), dtype=ydtype, device=device)
        self.n_in, self.n_out, self.device = splits.n_features, splits.n_outputs, device

    def reorder(self, W0: torch.Tensor, back: bool = False) -> torch.Tensor:
        """First-layer weights [..., n_in] from the data's input order to ``columns`` order (or
        ``back``)."""
        if self.columns is None:
            return W0
        order = np.argsort(self.columns) if back else self.columns
        return W0.index_select(-1, torch.as_tensor(order, device=W0.device))

    @property
    def n_train(self) -> int:
        """A member's training examples (those of one fold)."""
        return self._n_train

    def training_inputs(self, fold: int = 0) -> torch.Tensor:
        """The training inputs of one fold."""
        n = self.n_train
        return self.X_train[fold * n:(fold + 1) * n]

    def validation(self, fold: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """The validation inputs and targets of one fold."""
        part = slice(fold * self.n_valid, (fold + 1) * self.n_valid)
        return self.X_valid[part], self.y_valid[part]


def _values(members, name: str) -> list:
    """One training hyper-parameter of every member."""
    return [getattr(m.train, name) for m in members]


def _column(members, name: str) -> torch.Tensor:
    return torch.tensor([float(v) for v in _values(members, name)])


class Population:
    """Members that share a structure (their family's group key, batch size, update rule).

    Everything that is per member and changes as members leave lives in one tree, ``live``
    (parameters, optimizer state, schedule, Polyak average and burn-in, the family's extras,
    the training loss since the last validation), compacted by one ``optim.select``: a new
    per-member tensor put there cannot be forgotten when members stop.

    ``replay``: replay each plain-SGD update from a captured graph (``train.replay``); by
    default on a CUDA device, where an update is otherwise bound by launching its kernels.

    ``pruner``: a ``search.pruning.Pruner`` asked at every validation which members stop for
    being hopeless next to the study's other trials (§3.3.1); they leave the batch at once."""

    def __init__(self, members: list[Member], data: Data, replay: bool | None = None, pruner=None):
        self.members, self.data, dev = members, data, data.device
        self.model, self.hp = members[0].model, members[0].train
        self.family = family_of(self.model)
        P = len(members)
        drawn = [self.family.init(m.model, data.n_in, data.n_out, m.train.seed) if m.start is None
                 else self.family.given(m.model, m.start, data.n_in, data.n_out) for m in members]
        params, extras = self.family.stack(members, drawn, data)
        parts = self._rule(P, params)
        self.rule = optim.chain(*parts)
        self.plain_sgd = not parts and self.family.fuses(self.model, self.hp, extras)
        schedule = optim.Schedule(*(_column(members, k) for k in ("lr", "tau", "alpha", "adaptive_tau"))).to(dev)
        polyak = self.hp.polyak
        self.live = {
            "params": params, "state": self.rule.init(params), "schedule": schedule, "extras": extras,
            "average": optim.polyak_init(params) if polyak else None,
            # the average is the parameters themselves until each member's burn-in ends
            "polyak_start": (optim.polyak_start(schedule.tau, -(-data.n_train // self.hp.batch_size))
                             if polyak else None),
            "interval": torch.zeros(P, device=dev),          # training loss summed since the last validation
        }
        self.patience = Patience(_values(members, "patience"), _values(members, "patience_increase"),
                                 [mode == "add" for mode in _values(members, "patience_mode")],
                                 _values(members, "improvement"))
        self.best = {k: v.clone() for k, v in params.items()}
        self.best_loss = np.full(P, np.inf)
        self.level = np.array(_values(members, "significance"))
        self.best_example_errors = (torch.full((P, data.n_valid), float("inf"), device=dev)
                                    if self.level.any() else None)
        self.rngs = [np.random.default_rng([m.train.seed, 1]) for m in members]
        self.fold = torch.tensor([m.fold for m in members], device=dev)
        if not all(0 <= m.fold < data.folds for m in members) or (data.folds > 1 and self.hp.monitor):
            raise ValueError(f"members train on folds 0..{data.folds - 1} of their data, and are monitored "
                             "(train.monitor) only on a data of one fold")
        self.alive = np.arange(P)
        self.curves = [[] for _ in range(P)]
        self.stopped = [None] * P
        self.stopped_at = np.zeros((P, 2))  # examples seen, seconds
        self.first_loss = np.full(P, np.nan)
        self.divergence = np.array(_values(members, "divergence"))
        self.strikes = np.zeros(P, dtype=np.int64)   # validations in a row above the limit, not improving
        self.retired: list[int] = []       # stopped members whose results were not handed out yet
        self.pruner, self.notes, self.validated_at = pruner, [None] * P, 0
        self.lowest = np.full(P, np.inf)   # each member's lowest validation error, as a pruner reads curves
        self.monitor = Monitor(self) if self.hp.monitor else None
        replayable = self.plain_sgd and self.family.replayable and not polyak
        self.replay = Replay(dev) if replayable and (dev.type == "cuda" if replay is None else replay) else None

    @property
    def params(self) -> dict[str, torch.Tensor]:
        return self.live["params"]

    # ---- construction ------------------------------------------------------------------

    def _rule(self, P: int, params: dict) -> list[optim.Transform]:
        """The transforms of the update rule, with each member's coefficients; a transform every
        member would skip (all coefficients zero) is left out. None left: plain SGD."""
        ms, names, family = self.members, list(params), self.family
        layer = {name: family.layer(self.model, name) for name in names}
        decayed = names if self.hp.decay_biases else [n for n in names if family.is_weight(n)]

        def column(values):
            return optim.per_member(values, P).to(self.data.device)

        decay = {kind: {n: column(c) for n in decayed if any(c := [getattr(m.train, kind)[layer[n]] for m in ms])}
                 for kind in ("l2", "l1")}
        parts = [optim.add_decay(decay["l2"], decay["l1"])] if decay["l2"] or decay["l1"] else []
        if self.hp.optimizer == "adagrad":
            parts.append(optim.adagrad())
        elif self.hp.optimizer == "adam":
            parts.append(optim.adam())
        elif any(_values(ms, "momentum")):
            parts.append(optim.momentum(column(_values(ms, "momentum")), self.hp.momentum_form))
        scales = {n: [m.train.lr_scale[layer[n]] for m in ms] for n in names}
        if any(s != 1 for c in scales.values() for s in c):
            parts.append(optim.scale_by_layer({n: column(c) for n, c in scales.items()}))
        return parts

    # ---- one update -------------------------------------------------------------------

    def _step(self, idx: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        # Replayed: the rates are lr0 at every step; an epoch's shorter last minibatch is not
        # (capturing its shape would leave every full minibatch after it launched)
        live = self.live
        schedule = live["schedule"]
        if self.replay is not None and schedule.constant and idx.shape[1] == self.hp.batch_size:
            losses, = self.replay(self._replayed, idx)
            return losses, losses
        X, y = self._minibatch(idx)
        rates = schedule.rates(step)
        if self.plain_sgd:
            losses = self.family.sgd_step(self.model, live["params"], live["extras"], X, y, rates)
            criterion = losses
        else:
            losses, criterion, grads = self.family.signal(self.model, self.hp, live["params"], live["extras"], X, y)
        with torch.no_grad():
            if not self.plain_sgd:
                updates = self.rule.update(grads, live["state"], live["params"], step=step,
                                           decay_scale=X.shape[1] / self.data.n_train)
                optim.descend(live["params"], updates, rates)
            if live["average"] is not None:
                optim.polyak_update(live["average"], live["params"], step, live["polyak_start"])
        return losses, criterion

    def _minibatch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each member's own minibatch [P, B, ...], gathered in one call per tensor (the targets
        are the inputs for a family that learns its own input)."""
        d, flat = self.data, idx.reshape(-1)
        X = d.X_train.index_select(0, flat).view(*idx.shape, -1)
        if not self.family.supervised:
            return X, X
        y = d.y_train.index_select(0, flat).view(*idx.shape, *d.y_train.shape[1:])
        return X, y

    def _replayed(self, idx: torch.Tensor) -> tuple[torch.Tensor]:
        """The update a Replay captures: it reads only ``idx`` and tensors that stay in place
        until the population is compacted (which makes the Replay forget it)."""
        live = self.live
        X, y = self._minibatch(idx)
        return (self.family.sgd_step(self.model, live["params"], live["extras"], X, y, live["schedule"].lr0),)

    # ---- validation and stopping ---------------------------------------------------------

    def _evaluate(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Per-example validation error and monitors, [P_alive, N], each member on its own fold."""
        live, d = self.live, self.data
        params = live["average"] if live["average"] is not None else live["params"]
        if d.folds == 1:
            y = d.X_valid if not self.family.supervised else d.y_valid
            return self.family.evaluate(self.model, params, live["extras"], d.X_valid, y)
        # each fold's members on that fold's validation block alone: as many products as one
        # pass over every block, and each member sees exactly the validation set it would alone
        folds = self.fold[torch.as_tensor(self.alive, device=d.device)]
        error, monitors = None, {}
        for k in range(d.folds):
            rows = (folds == k).nonzero().squeeze(1)
            if not len(rows):
                continue
            X, y = d.validation(k)
            y = X if not self.family.supervised else y
            own = optim.select({"params": params, "extras": live["extras"]}, rows)
            e, m = self.family.evaluate(self.model, own["params"], own["extras"], X, y)
            if error is None:
                error = e.new_empty(len(folds), e.shape[1])
                monitors = {name: v.new_empty(len(folds), v.shape[1]) for name, v in m.items()}
            error[rows] = e
            for name, v in m.items():
                monitors[name][rows] = v
        return error, monitors

    def _validate(self, examples: int, train_loss: np.ndarray, seconds: float, pos: np.ndarray) -> np.ndarray:
        """Validate the alive members at positions ``pos``; returns the reason each of them
        stops now (or None)."""
        ids = self.alive[pos]
        at = torch.as_tensor(pos, device=self.data.device)
        example_error, monitors = self._evaluate()
        example_error = example_error[at]
        verr = example_error.mean(1).cpu().numpy().astype(np.float64)
        means = {k: v[at].mean(1).cpu().numpy().astype(np.float64) for k, v in monitors.items()}
        vloss = next(iter(means.values()))
        train_loss = train_loss[pos]
        limit = self.divergence[ids] * self.first_loss[ids]
        self.strikes[ids] = np.where((train_loss > limit) & ~(verr < self.patience.best[ids]), self.strikes[ids] + 1, 0)
        diverged = ~np.isfinite(train_loss) | (self.strikes[ids] >= STRIKES) | ~np.isfinite(verr)
        for v in means.values():
            diverged |= ~np.isfinite(v)
        accept = None
        if self.best_example_errors is not None:
            passed = significant(self.best_example_errors[ids], example_error,
                                 np.maximum(self.level[ids], 1e-12)).cpu().numpy()
            accept = passed | (self.level[ids] == 0)
        new = self.patience.observe(ids, examples, np.where(diverged, np.inf, verr), accept)
        if self.pruner is not None:
            self.lowest[ids] = np.fmin(self.lowest[ids], np.where(np.isnan(verr), np.inf, verr))
        if new.any():
            self._keep_best(ids[new], pos[new],
                            example_error[torch.as_tensor(np.flatnonzero(new), device=example_error.device)])
            self.best_loss[ids[new]] = vloss[new]
        for j, i in enumerate(ids):
            self.curves[i].append({"examples_seen": examples, "train_loss": float(train_loss[j]),
                                   **{k: float(v[j]) for k, v in means.items()}, "valid_error": float(verr[j]),
                                   "seconds": round(seconds, 4)})
        reasons = np.full(len(ids), None, dtype=object)
        reasons[self.patience.exhausted(ids, examples)] = "patience"
        reasons[diverged] = "diverged"
        return reasons

    def _keep_best(self, ids: np.ndarray, pos: np.ndarray, example_error: torch.Tensor) -> None:
        """Copy the validated parameters of alive positions ``pos`` into the best slots ``ids``."""
        dev = self.data.device
        pos, dest = torch.as_tensor(pos, device=dev), torch.as_tensor(ids, device=dev)
        params = self.live["average"] if self.live["average"] is not None else self.live["params"]
        with torch.no_grad():
            for k, v in params.items():
                self.best[k].index_copy_(0, dest, v.index_select(0, pos))
            if self.best_example_errors is not None:
                self.best_example_errors.index_copy_(0, dest, example_error)

    def _retire(self, pos: np.ndarray, reasons: list[str], examples: int) -> torch.Tensor | None:
        """Record members at alive positions ``pos`` as stopped and drop them from every stacked
        tensor; returns the kept positions (None if nobody stopped)."""
        if not len(pos):
            return None
        seconds = time.perf_counter() - self.start
        for j, reason in zip(pos, reasons):
            i = self.alive[j]
            self.stopped[i] = reason
            self.stopped_at[i] = (examples, seconds)
            self.retired.append(i)
        done = np.zeros(len(self.alive), dtype=bool)
        done[pos] = True
        keep = torch.as_tensor(np.flatnonzero(~done), device=self.data.device)
        with torch.no_grad():
            self.live = optim.select(self.live, keep)
        self.alive = self.alive[~done]
        if self.replay is not None:
            self.replay.forget()
        return keep

    # ---- the loop ---------------------------------------------------------------------

    def _orders(self) -> torch.Tensor:
        """This epoch's example order of every alive member, each from its own generator."""
        n = self.data.n_train
        return torch.as_tensor(np.stack([self.rngs[i].permutation(n) + self.members[i].fold * n for i in self.alive]),
                               device=self.data.device)

    def time_steps(self, steps: int) -> float:
        """Seconds for ``steps`` updates of the whole population (no validation): what a
        scheduler measures to decide how to batch trials. On CPU it is the calling thread's CPU
        time (torch with one thread computes there), so other busy processes don't distort it;
        on a GPU, wall-clock time. Leaves the parameters trained."""
        d, B = self.data, self.hp.batch_size
        cuda = d.device.type == "cuda"
        clock = time.perf_counter if cuda else time.thread_time
        order = self._orders()
        self._step(order[:, :B], 1)                               # warm up
        if cuda:
            torch.cuda.synchronize()
        start = clock()
        for t in range(steps):
            s = (t * B) % max(d.n_train - B, 1)
            self._step(order[:, s:s + B], t + 2)
        if cuda:
            torch.cuda.synchronize()
        return clock() - start

    def run(self, progress=None) -> list[Result]:
        """Train every member; their results in the members' order."""
        results = dict(self.iterate(progress))
        return [results[i] for i in range(len(self.members))]

    def iterate(self, progress=None):
        """Train every member, yielding (index, Result) as each one stops, so a caller can keep
        the results of finished members while the others still train."""
        d, B = self.data, self.hp.batch_size
        valid_every = self.hp.valid_every or max(d.n_valid, B)
        max_epochs = np.array(_values(self.members, "max_epochs"))
        max_examples = np.array([m.train.max_examples or np.iinfo(np.int64).max for m in self.members])
        budgeted = bool(max_examples.min() < np.iinfo(np.int64).max)
        self.start = time.perf_counter()
        examples = step = epoch = 0
        self.steps_in_interval = 0
        monitor = self.monitor
        if monitor is not None:
            monitor.record(0)
        while len(self.alive):
            epoch += 1
            order = self._orders()
            epoch_criterion = torch.zeros(len(self.alive), device=d.device)
            for s in range(0, d.n_train, B):
                step += 1
                seen = min(B, d.n_train - s)
                before = monitor.watch() if monitor is not None and monitor.due(examples, seen) else None
                losses, criterion = self._step(order[:, s:s + B], step)
                if step == 1:
                    self.first_loss[self.alive] = losses.cpu().numpy()
                self.live["interval"] += losses
                self.steps_in_interval += 1
                epoch_criterion += criterion
                examples += seen
                if before is not None:
                    monitor.record(examples, before)
                if examples // valid_every > (examples - seen) // valid_every:     # crossed a multiple
                    # those whose budget ends at this validation trained in full: never pruned
                    ending = None if self.pruner is None else (max_examples[self.alive] <= examples) | (
                        (max_epochs[self.alive] <= epoch) & (s + B >= d.n_train))
                    keep = self._check(examples, np.arange(len(self.alive)), progress, ending=ending)
                    yield from self._hand_out()
                    if keep is not None:
                        order, epoch_criterion = order[keep], epoch_criterion[keep]
                    if not len(self.alive):
                        return
                if budgeted and len(spent := np.flatnonzero(max_examples[self.alive] <= examples)):
                    keep = self._spend(spent, examples, progress)
                    yield from self._hand_out()
                    order, epoch_criterion = order[keep], epoch_criterion[keep]
                    if not len(self.alive):
                        return
            self.live["schedule"].end_epoch(step, epoch_criterion / -(-d.n_train // B))
            spent = np.flatnonzero(max_epochs[self.alive] <= epoch)
            if len(spent):
                self._spend(spent, examples, progress)
                yield from self._hand_out()

    def _spend(self, spent: np.ndarray, examples: int, progress) -> torch.Tensor:
        """Retire the members at alive positions ``spent``, out of budget; returns the kept
        positions. Each gets a last validation unless it just had one; the others go on exactly
        as they would alone."""
        curve = self.curves[self.alive[spent[0]]]
        if not (curve and curve[-1]["examples_seen"] == examples):
            kept = self._check(examples, spent, progress, budget=True)
        else:
            kept = self._retire(spent, ["budget"] * len(spent), examples)
        return kept

    def _check(self, examples: int, pos: np.ndarray, progress, budget: bool = False, ending=None):
        """Validate members at alive positions ``pos``, report progress, retire those that stop;
        returns the kept positions when the population shrank. ``ending``: which of them reach
        their budget now (the pruner spares them)."""
        count = max(self.steps_in_interval, 1)
        train_loss = (self.live["interval"] / count).cpu().numpy().astype(np.float64)
        seconds = time.perf_counter() - self.start
        reasons = self._validate(examples, train_loss, seconds, pos)
        if budget:
            reasons = np.array([r or "budget" for r in reasons], dtype=object)
        else:
            self.live["interval"].zero_()
            self.steps_in_interval = 0
            if self.pruner is not None:
                self._prune(examples, pos, reasons, ending)
        if progress is not None:
            ids = self.alive
            progress({"examples_seen": examples, "members": len(self.members), "alive": len(ids),
                      "train_loss": train_loss, "best_valid_error": self.patience.best[ids],
                      "patience_left": self.patience.left(ids, examples), "seconds": seconds})
        stopping = [j for j, r in zip(pos, reasons) if r is not None]
        return self._retire(np.array(stopping, dtype=np.int64), [r for r in reasons if r is not None], examples)

    def _prune(self, examples: int, pos: np.ndarray, reasons: np.ndarray, ending) -> None:
        """Mark the members at ``pos`` that the pruner stops (those not stopping anyway). They
        are judged on their lowest validation error, as the pruner reads finished curves (the
        patience's best may be a higher one, with ``train.significance``); members it stopped
        earlier count at their lowest."""
        ids = self.alive[pos]
        stopped = self.lowest[[i for i, why in enumerate(self.stopped) if why == "pruned"]]
        verdicts = self.pruner.judge(examples, self.validated_at, self.lowest[ids], self.data.n_train, stopped,
                                     who=[self.members[i].trial for i in ids])
        self.validated_at = examples
        for j, verdict in enumerate(verdicts):
            if verdict is not None and reasons[j] is None and not ending[j]:
                reasons[j], self.notes[ids[j]] = "pruned", verdict

    def _hand_out(self):
        while self.retired:
            i = self.retired.pop(0)
            yield i, self._result(i)

    def _result(self, i: int) -> Result:
        m = self.members[i]
        return Result(m, float(self.patience.best[i]), float(self.best_loss[i]), int(self.patience.best_at[i]),
                      int(self.stopped_at[i, 0]), self.stopped[i], float(self.stopped_at[i, 1]), self.curves[i],
                      self.family.unstack(self.best, i, m.model, self.data),
                      statistics=None if self.monitor is None else self.monitor.statistics[i], note=self.notes[i])
