"""What the commands show: live status lines, and the tables printed after training."""

from __future__ import annotations

import time


def show_rate_search(search, stream) -> None:
    """The learning-rate search's path: each rate with its training criterion at the start and
    after the short run, and the rate chosen."""
    print(f"learning-rate search (§2.1): the training criterion before and after a short run, "
          f"{'up' if search.direction == 'up' else 'down'} by factors of 3", file=stream)
    print(f"{'lr':>10}  {'start':>10}  {'end':>10}", file=stream)
    for r in search.runs:
        print(f"{r.rate:>10.4g}  {r.start_criterion:>10.4f}  {r.end_criterion:>10.4f}  "
              f"{'diverged' if r.diverged else 'stable'}", file=stream)
    print(f"largest stable lr {search.largest_stable:.4g}; training with lr = {search.rate:.4g} "
          f"({search.largest_stable / search.rate:.3g}x below it)", file=stream)


class StatusLine:
    """A live status line: rewritten in place on a terminal, otherwise a line at most every
    ``every`` seconds (unless ``force``), so logs stay short."""

    def __init__(self, stream, every: float = 5.0):
        self.stream, self.every, self.last, self.tty = stream, every, 0.0, stream.isatty()

    def due(self, force: bool = False) -> bool:
        now = time.monotonic()
        if self.tty or force or now - self.last >= self.every:
            self.last = now
            return True
        return False

    def show(self, line: str, notes=()) -> None:
        for note in notes:                       # lines that stay, above the status line
            self.note(note)
        self.stream.write(f"\r{line}\x1b[K" if self.tty else line + "\n")
        self.stream.flush()

    def note(self, line: str) -> None:
        """A line that stays (over the status line, on a terminal)."""
        self.stream.write(("\r\x1b[K" if self.tty else "") + f"{line}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")


class Progress(StatusLine):
    """Training: examples seen, training loss, best validation error, patience left."""

    def __call__(self, event: dict) -> None:
        if not self.due():
            return
        best = event["best_valid_error"]
        line = (f"examples {event['examples_seen']:>9,}  train loss {event['train_loss'].min():.4f}  "
                f"best valid error {best.min():.4f}  patience left {int(event['patience_left'].max()):,}  "
                f"{event['seconds']:.1f} s")
        if event["members"] > 1:
            line += f"  ({event['alive']}/{event['members']} training)"
        self.show(line)


def first_line(error: str | None, width: int | None = None) -> str:
    line = (error or "no message").strip().splitlines()[0] if (error or "").strip() else "no message"
    return line if width is None or len(line) <= width else line[:width - 3] + "..."


def listed(numbers: list[int]) -> str:
    return ", ".join(map(str, numbers[:8])) + (f" and {len(numbers) - 8} more" if len(numbers) > 8 else "")


class TuneProgress(StatusLine):
    """Tuning: trials done / failed / running, best so far and time left, after every trial."""

    def __call__(self, p) -> None:
        if not self.due(force=bool(p.events) or p.done == p.total):
            return
        best = "-" if p.best is None else f"{p.best:.4f}"
        eta = "" if p.eta is None else f"  about {p.eta:.0f} s left"
        pruned = f"{p.pruned} pruned, " if p.pruned else ""
        self.show(f"trials {p.done}/{p.total} done ({pruned}{p.failed} failed, {p.running} running)  "
                  f"best {best}  {p.seconds:.0f} s{eta}", p.events)


def show_statistics(stats) -> None:
    """The last snapshot of the layers' statistics as a table, and what in it needs attention."""
    from ..diagnose import findings, layer_table

    table = layer_table(stats)

    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    print(f"layer statistics after {table['examples_seen']:,} examples (on the first monitored training examples):")
    print(f"  {'units':<15}{'mean':>9}{'std':>9}{'grad std':>10}{'saturated':>10}{'dead':>7}{'probe error':>12}")
    for u in table["units"]:
        print(f"  {u['layer'] + ' (' + u['activation'] + ')':<15}{num(u['mean'], '.3f'):>9}{num(u['std'], '.3f'):>9}"
              f"{num(u['grad_std'], '.1e'):>10}{num(u['saturated'], '.0%'):>10}{num(u['dead'], '.0%'):>7}"
              f"{num(u['probe_error'], '.3f'):>12}")
    print(f"  {'tensor':<15}{'std':>9}{'grad std':>10}{'update/weight':>15}")
    for t in table["tensors"]:
        print(f"  {t['tensor']:<15}{num(t['std'], '.3f'):>9}{num(t['grad_std'], '.1e'):>10}"
              f"{num(t['update_ratio'], '.1e'):>15}")
    for line in findings(stats):
        print(f"  ! {line}")
