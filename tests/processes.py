"""The command line as a real process, forked from the test process (which has already imported
torch): it can be signalled and killed like ``subprocess.Popen`` of ``python -m purelearn.cli``,
without paying seconds of imports per process. It computes on one thread. The installed command
itself is tested in test_cli.py."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
import traceback

import torch


class Command:
    """``purelearn ARGS`` in a forked child, in folder ``cwd``; stdout and stderr go to files,
    or stdout to the file descriptor ``stdout``."""

    def __init__(self, *args: str, cwd=None, stdout: int | None = None):
        self._out = tempfile.TemporaryFile()
        self._err = tempfile.TemporaryFile()
        self.returncode: int | None = None
        self.pid = os.fork()
        if self.pid == 0:
            self._child([str(a) for a in args], cwd, self._out.fileno() if stdout is None else stdout)

    def _child(self, args, cwd, stdout):
        code = 1
        try:
            os.dup2(stdout, 1)
            os.dup2(self._err.fileno(), 2)
            sys.stdout, sys.stderr = open(1, "w", closefd=False), open(2, "w", closefd=False)
            # the test process may have changed these; a command starts with the defaults
            signal.signal(signal.SIGINT, signal.default_int_handler)
            for sig in (signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            # torch's compute threads do not survive a fork (a parallel loop would wait on them
            # forever); on one thread none is used, as in purelearn's own forked workers.
            torch.set_num_threads(1)
            if cwd is not None:
                os.chdir(cwd)
            from purelearn.cli import main

            code = main(args)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            # Nothing may escape this frame: the child would go on running the test session.
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def wait(self, timeout: float = 300) -> int:
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                raise TimeoutError(f"purelearn did not end within {timeout} s: {self.stderr}")
            time.sleep(0.02)
        return self.returncode

    def communicate(self, timeout: float = 300) -> tuple[str, str]:
        self.wait(timeout)
        return self._read(self._out), self._read(self._err)

    @staticmethod
    def _read(f) -> str:
        f.seek(0)
        return f.read().decode(errors="replace")

    @property
    def stdout(self) -> str:
        return self._read(self._out)

    @property
    def stderr(self) -> str:
        return self._read(self._err)


def run(*args: str, cwd=None, timeout: float = 300) -> Command:
    """Run to the end: the finished command, with returncode, stdout and stderr."""
    command = Command(*args, cwd=cwd)
    command.wait(timeout)
    return command
