"""Where trials run: in the calling process, or in a pool of worker processes.

The pool is a set of processes with one pipe each, so the driver always knows which trial each
worker holds: a worker that crashes or is killed fails only its own trial and is replaced.
Workers run torch with one thread each (one worker per core is the default).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from multiprocessing.connection import wait

from ..errors import PurelearnError
from .objective import Outcome, run_trial


class Inline:
    """Run each trial in the calling process, at once (for debugging and small studies)."""

    workers = 1

    def __init__(self, objective):
        self.objective, self.job = objective, None

    @property
    def free(self) -> int:
        return 0 if self.job else 1

    def submit(self, number: int, params: dict, seed: int) -> str:
        self.job = (number, params, seed)   # run in wait(), after the driver recorded the start
        return f"inline (pid {os.getpid()})"

    def wait(self) -> list[tuple[int, Outcome]]:
        if self.job is None:
            return []
        (number, params, seed), self.job = self.job, None
        return [(number, run_trial(self.objective, params, seed))]

    def close(self) -> None:
        pass


def _worker(objective, conn) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides how a run stops
    import torch

    torch.set_num_threads(1)
    while True:
        job = conn.recv()
        if job is None:
            return
        number, params, seed = job
        conn.send((number, run_trial(objective, params, seed)))


class ProcessPool:
    """``workers`` processes (default: one per core), each training one trial at a time."""

    def __init__(self, objective, workers: int | None = None):
        self.objective = objective
        self.workers = workers or os.cpu_count() or 1
        self.ctx = mp.get_context("spawn")
        self.slots = [self._start() for _ in range(self.workers)]
        self.jobs: dict[int, tuple[int, dict, int] | None] = {i: None for i in range(self.workers)}
        self.deaths_in_a_row = 0

    def _start(self):
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=_worker, args=(self.objective, child), daemon=True)
        proc.start()
        child.close()
        return proc, parent

    @property
    def free(self) -> int:
        return sum(job is None for job in self.jobs.values())

    def submit(self, number: int, params: dict, seed: int) -> str:
        """Hand a trial to a free worker; returns which worker took it."""
        i = next(i for i, job in self.jobs.items() if job is None)
        self.jobs[i] = (number, params, seed)
        self.slots[i][1].send((number, params, seed))
        return f"worker {i} (pid {self.slots[i][0].pid})"

    def wait(self) -> list[tuple[int, Outcome]]:
        """Block until at least one trial ends; a dead worker's trial comes back failed."""
        busy = [i for i, job in self.jobs.items() if job is not None]
        if not busy:
            return []
        handles = {self.slots[i][1]: i for i in busy} | {self.slots[i][0].sentinel: i for i in busy}
        done = []
        for ready in wait(list(handles)):
            i = handles[ready]
            if self.jobs[i] is None:
                continue
            proc, conn = self.slots[i]
            if conn.poll():
                try:
                    done.append(conn.recv())
                    self.jobs[i] = None
                    self.deaths_in_a_row = 0
                    continue
                except (EOFError, OSError):
                    pass
            if not proc.is_alive():
                proc.join()
                done.append((self.jobs[i][0], Outcome("failed", error=f"the worker process died "
                                                                      f"(exit code {proc.exitcode})")))
                self.jobs[i] = None
                conn.close()
                self.deaths_in_a_row += 1
                if self.deaths_in_a_row > 2 * self.workers:
                    raise PurelearnError("worker processes keep dying before finishing any trial; run with "
                                         "workers = 1 (in-process) to see why.")
                self.slots[i] = self._start()
        return done

    def close(self) -> None:
        for proc, conn in self.slots:
            try:
                conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        for proc, conn in self.slots:
            proc.join(timeout=2)
            if proc.is_alive():
                proc.terminate()
                proc.join()

    def terminate(self) -> None:
        for proc, _ in self.slots:
            proc.terminate()
        for proc, _ in self.slots:
            proc.join()


EXECUTORS = {"inline": Inline, "process": ProcessPool}
