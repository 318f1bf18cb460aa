"""Where trials run: in the calling process, or in a pool of worker processes.

Work is handed out in batches of trials (a batch of a config objective trains as populations)
and results come back one trial at a time, as each trial stops, so the driver records a
finished trial at once even while the rest of its batch trains. Each pool worker has its own
pipe, so the driver always knows which trials a worker holds: a worker that crashes or is
killed hands back its unfinished trials as interrupted (the driver re-runs them) and is
replaced. A worker ends as soon as its driver does, however the driver ends.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import traceback
from multiprocessing.connection import wait

from ..errors import PurelearnError
from ..forking import close_in_children
from ..search.pruning import note_points
from .objective import Outcome


class Inline:
    """Run each batch in the calling process (for debugging and small studies)."""

    workers = 1

    def __init__(self, objective):
        self.objective, self.running, self.unfinished = objective, None, set()

    @property
    def free(self) -> int:
        return 0 if self.unfinished else 1

    def submit(self, batch: list[tuple[int, dict, int]], pruning=None) -> str:
        self.running = iter(self.objective.run_batch(batch, pruning))   # starts in wait(), after the driver recorded it
        self.unfinished = {number for number, _, _ in batch}
        return f"inline (pid {os.getpid()})"

    def wait(self) -> list[tuple[int, Outcome]]:
        """The next finished trial of the running batch."""
        if not self.unfinished:
            return []
        try:
            number, outcome = next(self.running)
        except StopIteration:
            lost, self.unfinished = sorted(self.unfinished), set()
            return [(n, Outcome("failed", error="the batch ended without this trial")) for n in lost]
        self.unfinished.discard(number)
        return [(number, outcome)]

    def tell(self, number: int, curve) -> None:
        """Nothing to pass on: one batch runs at a time, and its own curves are already known."""

    def close(self) -> None:
        pass

    terminate = close


def keep_freed_memory() -> None:
    """Let this process keep the memory it frees for its next allocations. A training step frees
    and allocates the same large temporaries every step, and glibc otherwise maps and unmaps
    them (or trims them back) each time: a population of 128 64-64-10 members measured about 20%
    faster per step with them kept. Called in the processes purelearn owns (workers, the command
    line); a library call doesn't change its caller's allocator. A no-op off glibc."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:
        mallopt(-3, 32 << 20)     # M_MMAP_THRESHOLD: blocks under 32 MiB come from the heap
        mallopt(-1, 512 << 20)    # M_TRIM_THRESHOLD: keep up to 512 MiB of freed heap


def _end_with(driver: int) -> None:
    """End this process when the driver ``driver`` dies (killed, out of memory...): on Linux the
    kernel sends the signal (PR_SET_PDEATHSIG), elsewhere a thread watches the parent's pid. A
    driver that died before this ran is caught by the check after it."""
    prctl = getattr(ctypes.CDLL(None), "prctl", None) if sys.platform == "linux" else None
    if prctl is not None:
        prctl(1, signal.SIGKILL)                     # PR_SET_PDEATHSIG
    else:
        def watch():
            while os.getppid() == driver:
                time.sleep(0.5)
            os._exit(1)
        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != driver:
        os._exit(1)


def _worker(objective, conn, threads: int, driver: int) -> None:
    _end_with(driver)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides how a run stops
    for sig in (signal.SIGTERM, signal.SIGHUP):   # a forked worker has the command line's handlers
        signal.signal(sig, signal.SIG_DFL)
    keep_freed_memory()
    import torch

    torch.set_num_threads(threads)
    try:
        objective.prepare()
        while (job := conn.recv()) is not None:
            if job[0] in ("curve", "points"):   # news for a batch that has ended: the next one has it
                continue
            batch_id, batch, pruning = job
            if pruning is not None:
                pruning = (*pruning, _news(conn, batch_id), _share(conn, batch_id))
            try:
                for number, outcome in objective.run_batch(batch, pruning):
                    conn.send(("result", batch_id, number, outcome))
            except (BrokenPipeError, EOFError):
                raise
            except Exception as e:  # a bug outside any one trial: fail what is left, keep the worker
                conn.send(("error", batch_id, f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=-3)}"))
    except (BrokenPipeError, EOFError):
        return                      # the driver is gone (killed): nothing left to report to


def _news(conn, batch_id: int):
    """What a worker's pruner calls to hear what other workers' trials did since its batch was
    handed out: the curves of those that finished and the values of those that validated, as
    the driver passed them on. While a batch runs, the driver sends nothing else (a worker gets
    its next batch only after its last result)."""
    def news():
        heard = []
        while conn.poll():
            kind, batch, *rest = conn.recv()
            if batch == batch_id:
                heard.append((kind, *rest))
        return heard
    return news


def _share(conn, batch_id: int):
    """What a worker's pruner calls with its members' values as they validate: sent to the
    driver, which passes them on to the workers pruning other batches."""
    def share(examples: int, values: list) -> None:
        conn.send(("points", batch_id, examples, values))
    return share


SPAWN = mp.get_context("spawn")


def _fast_start(threads: int):
    """How the pool's first workers start. Forked, a worker begins at once with torch and the
    data already loaded; spawned, it first imports torch again (about 1.5 s here, 10% of a
    64-trial MNIST search). Forking is safe where PyTorch's own data loaders do it: on Linux,
    before this process uses CUDA, for workers that compute on one thread (torch's compute
    threads don't exist in the child, and one thread never waits for them), and only while no
    other Python thread runs here (one could hold a lock the child would wait on forever, as a
    notebook's threads may). Elsewhere, and for a worker replaced later (the schedule's
    measuring thread may be running then), workers are spawned."""
    import torch

    if (sys.platform == "linux" and threads == 1 and threading.active_count() == 1
            and not torch.cuda.is_initialized()):
        return mp.get_context("fork")
    return SPAWN


class ProcessPool:
    """``workers`` processes (default: one per core), each running one batch at a time with
    ``threads`` torch threads."""

    def __init__(self, objective, workers: int | None = None, threads: int = 1):
        self.objective, self.threads = objective, threads
        self.workers = workers or os.cpu_count() or 1
        self.slots = []
        for _ in range(self.workers):
            self.slots.append(self._start(_fast_start(threads)))
        # per worker: (batch id, numbers of the batch not finished yet), or None when idle
        self.jobs: dict[int, tuple[int, set] | None] = {i: None for i in range(self.workers)}
        self.listening: dict[int, tuple[int, set]] = {}   # per worker whose batch prunes: its id and numbers
        self.running: dict[int, tuple[list, list]] = {}   # curves so far of the trials that prune, by number
        self.batches = 0
        self.deaths_in_a_row = 0

    def _start(self, ctx=SPAWN):
        parent, child = ctx.Pipe()
        close_in_children(parent.fileno())            # a forked sibling must not hold this end
        proc = ctx.Process(target=_worker, args=(self.objective, child, self.threads, os.getpid()), daemon=True)
        proc.start()
        child.close()
        return proc, parent

    @property
    def free(self) -> int:
        return sum(job is None for job in self.jobs.values())

    def submit(self, batch: list[tuple[int, dict, int]], pruning=None) -> str:
        """Hand a batch to a free worker (with what the study's pruning compares its trials
        with, since a worker never reads the store: the driver's finished curves, and the
        curves so far of the trials other workers train); returns which worker took it."""
        i = next(i for i, job in self.jobs.items() if job is None)
        self.batches += 1
        self.jobs[i] = (self.batches, {number for number, _, _ in batch})
        if pruning is not None:
            self.listening[i] = (self.batches, {number for number, _, _ in batch})
            pruning = (*pruning, self.running)        # pickled as it is sent: a copy of this moment
        self.slots[i][1].send((self.batches, batch, pruning))
        return f"worker {i} (pid {self.slots[i][0].pid})"

    def tell(self, number: int, curve) -> None:
        """Pass a finished trial's curve to the workers pruning a batch that doesn't hold it (the
        one that does added it itself), so that they judge against it from their next
        validation on, as the driver would."""
        self._pass_on(number, "curve", number, curve)

    def _pass_on(self, number: int, kind: str, *news) -> None:
        """Send news of trial ``number`` to every worker pruning a batch without it."""
        for i, (batch_id, numbers) in self.listening.items():
            if self.jobs[i] is not None and self.jobs[i][0] == batch_id and number not in numbers:
                try:
                    self.slots[i][1].send((kind, batch_id, *news))
                except (BrokenPipeError, OSError):
                    pass                  # that worker died: its trials come back interrupted

    def wait(self) -> list[tuple[int, Outcome]]:
        """Block until some trial ends, passing on the values of trials that validated
        meanwhile; a dead worker's unfinished trials come back failed."""
        done = []
        while not done:
            busy = [i for i, job in self.jobs.items() if job is not None]
            if not busy:
                return []
            handles = {self.slots[i][1]: i for i in busy} | {self.slots[i][0].sentinel: i for i in busy}
            for ready in wait(list(handles)):
                i = handles[ready]
                if self.jobs[i] is not None:
                    done.extend(self._collect(i))
        return done

    def _collect(self, i: int) -> list[tuple[int, Outcome]]:
        """Read what worker i sent; its slot frees when every trial of its batch is back."""
        proc, conn = self.slots[i]
        out = []
        try:
            while self.jobs[i] is not None and conn.poll():
                kind, batch_id, *rest = conn.recv()
                current, unfinished = self.jobs[i]
                if batch_id != current:
                    continue
                if kind == "points":
                    examples, values = rest
                    note_points(self.running, examples, values)      # all of one batch: one message
                    self._pass_on(values[0][0], "points", examples, values)
                elif kind == "result":
                    unfinished.discard(rest[0])
                    self.running.pop(rest[0], None)
                    out.append((rest[0], rest[1]))
                else:
                    out += [(n, Outcome("failed", error=rest[0])) for n in sorted(unfinished)]
                    unfinished.clear()
                if not unfinished:
                    self.jobs[i] = None
                    self.deaths_in_a_row = 0
        except (EOFError, OSError):
            pass
        if self.jobs[i] is not None and not proc.is_alive():
            proc.join()
            out += [(n, Outcome("interrupted", error=f"its worker process died ({_death(proc.exitcode)})"))
                    for n in sorted(self.jobs[i][1])]
            for n in self.jobs[i][1]:
                self.running.pop(n, None)
            self.jobs[i] = None
            close_in_children(conn.fileno(), close=False)
            conn.close()
            self.deaths_in_a_row += 1
            # The driver re-runs a dead worker's trial once: each worker dying twice on two
            # trials in a row, with nothing finished between, is not one trial's fault.
            if self.deaths_in_a_row > 4 * self.workers:
                raise PurelearnError("worker processes keep dying before finishing any trial; run with "
                                     "workers = 1 (in-process) to see why.")
            self.slots[i] = self._start()
        return out

    def close(self) -> None:
        """Tell every worker to exit, without waiting: every result is in, and a process's
        shutdown with torch loaded takes 0.4 s. They are daemons: multiprocessing reaps them
        when it next starts a process, and ends any still running when this process exits."""
        for _, conn in self.slots:
            try:
                conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            self._close_end(conn)

    def terminate(self) -> None:
        for proc, _ in self.slots:
            proc.terminate()
        for proc, conn in self.slots:
            proc.join()
            self._close_end(conn)

    @staticmethod
    def _close_end(conn) -> None:
        if not conn.closed:
            close_in_children(conn.fileno(), close=False)
            conn.close()


def _death(exitcode: int | None) -> str:
    """'killed by SIGKILL' or 'exit code 3'."""
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            pass
    return f"exit code {exitcode}"


EXECUTORS = {"inline": Inline, "process": ProcessPool}
