"""The ``purelearn`` command."""

from __future__ import annotations

import argparse
import json
import sys
import time

from .config import load_config
from .errors import PurelearnError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="purelearn", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train one network from a TOML config",
                                description="Train one network from a TOML config and report its best "
                                            "validation point.")
    train.add_argument("config", help="TOML file with [data], [model] and [train] sections")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key with a TOML value, e.g. --set model.hidden=[256,256]")
    train.add_argument("--seed", type=int, help="shorthand for --set train.seed=N")
    train.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except PurelearnError as e:
        print(f"purelearn: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\npurelearn: interrupted", file=sys.stderr)
        return 130


def train_command(args) -> int:
    from .train import check_member, fit, resolve_device

    overrides = list(args.overrides) + ([f"train.seed={args.seed}"] if args.seed is not None else [])
    config = load_config(args.config, overrides)
    splits = config.data.splits()
    member, device = check_member(config.member(), splits), resolve_device(config.device)
    show = Progress(sys.stderr)
    print(f"training on {splits.name}: {len(splits.X_train)} train / {len(splits.X_valid)} valid examples, "
          f"{splits.n_features} features -> {splits.n_outputs} outputs", file=sys.stderr)
    result = fit(splits, member, device=device, progress=show)
    show.close()
    summary = result.summary() | {"config": config.to_dict()}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"best validation error {result.best_valid_error:.4f} (loss {result.best_valid_loss:.4f}) "
              f"after {result.examples_seen_at_best:,} examples; stopped by {result.stopped_because} "
              f"after {result.examples_seen:,} examples in {result.seconds:.1f} s")
    return 0


class Progress:
    """A live status line (rewritten in place on a terminal, a line every few seconds otherwise)."""

    def __init__(self, stream, every: float = 5.0):
        self.stream, self.every, self.last, self.tty = stream, every, 0.0, stream.isatty()

    def __call__(self, event: dict) -> None:
        now = time.monotonic()
        if not self.tty and now - self.last < self.every:
            return
        self.last = now
        best = event["best_valid_error"]
        line = (f"examples {event['examples_seen']:>9,}  train loss {event['train_loss'].min():.4f}  "
                f"best valid error {best.min():.4f}  patience left {int(event['patience_left'].max()):,}  "
                f"{event['seconds']:.1f} s")
        if event["members"] > 1:
            line += f"  ({event['alive']}/{event['members']} training)"
        self.stream.write(f"\r{line}\x1b[K" if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")


COMMANDS = {"train": train_command}

if __name__ == "__main__":
    sys.exit(main())
