"""The purelearn command: train, tune, and look at studies; a module per group of commands
(``training``, ``studies``, ``protocol``), what they show in ``lines``."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from .. import __version__
from ..errors import PurelearnError
from . import protocol, studies, training


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP: stop as Ctrl-C does (running trials marked interrupted)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _stop(signum, _frame):
    raise Stopped(signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="purelearn", description="Train neural networks with the practice of "
                                     "Bengio (2012), search their hyper-parameters, and look at the studies.")
    parser.add_argument("--version", action="version", version=f"purelearn {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    training.add(commands)
    studies.add_tune(commands)
    protocol.add(commands)
    studies.add_views(commands)
    args = parser.parse_args(argv)
    from ..execute.workers import keep_freed_memory

    keep_freed_memory()
    handlers = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        code = args.run(args)
        sys.stdout.flush()          # here, where a reader that has gone away is handled below
        return code
    except PurelearnError as e:
        print(f"purelearn: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", signal.SIGINT)
        print(f"\npurelearn: {'interrupted' if signum == signal.SIGINT else 'stopped by ' + signal.Signals(signum).name}",
              file=sys.stderr)
        return 128 + signum
    except BrokenPipeError:
        # The reader went away (``purelearn trials | head``): nothing more to say to it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
