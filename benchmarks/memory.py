"""Memory, measured in fresh processes (by hand; figures in RESULTS.md):

1. the estimate a population is sized by (``train.memory.member_bytes``) against what a real
   population of 16 wide members adds to a process's peak: it must be an upper bound;
2. page faults over 200 steps of 128 members, with the freed memory kept (as workers and the
   command line do) and with the system allocator's default;
3. the peak memory of ``purelearn tune`` under ``--memory-limit``, the schedule's measurement
   included, on a space of wide networks.

    python benchmarks/memory.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from common import machine

FOOTPRINT = """
import re, numpy as np, torch
from purelearn import MLP, Member, Training, fit
from purelearn.data import from_arrays, prepare
torch.set_num_threads(1)
rng = np.random.default_rng(0)
s = prepare(from_arrays(rng.normal(size=(2000, 784)).astype(np.float32), rng.integers(0, 10, 2000)), test=0.0)
members = [Member(MLP((512, 512)), Training(lr=0.01, momentum=0.9, max_epochs=1, seed=i)) for i in range(16)]
def peak():  # VmHWM: this process image's peak memory (ru_maxrss would count the forking parent's)
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) * 1024
fit(s, members[:1])                        # warm up the allocator and lazily loaded kernels
before = peak()
fit(s, members)
print(peak() - before)
"""

STEPS = """
import resource, sys, torch
torch.set_num_threads(1)
if sys.argv[1] == "keep":
    from purelearn.execute.workers import keep_freed_memory
    keep_freed_memory()
from purelearn import MLP, Member, Training
from purelearn.data import load, prepare
from purelearn.train.fit import check_member
from purelearn.train.population import Data, Population
s = prepare(load("digits"), preprocess=["standardize"])
members = [check_member(Member(MLP((64,)), Training(seed=i)), s) for i in range(128)]
p = Population(members, Data(s, torch.device("cpu")))
p.time_steps(5)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
p.time_steps(200)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

WIDE = """[data]
name = "mnist5k"
preprocess = ["scale"]
[model]
hidden = [1024]
[train]
max_epochs = 1
[search]
trials = 32
workers = 1
memory_limit = {limit}
[search.space]
"model.units" = "intloguniform(1024, 2048)"
"train.lr" = "loguniform(1e-3, 0.1)"
"""


def _run(code: str, *args: str) -> int:
    return int(subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                              check=True).stdout.split()[-1])


def estimate_against_real() -> None:
    from purelearn.train.memory import member_bytes

    sizes = [784, 512, 512, 10]
    estimate = 16 * member_bytes(sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:])), 32, sum(sizes))
    grew = _run(FOOTPRINT)
    print(f"16 members of 784-512-512-10 with momentum: grew {grew / 2**20:.0f} MB, estimated "
          f"{estimate / 2**20:.0f} MB ({grew / estimate:.2f} of the estimate; an upper bound: {grew <= estimate})")


def page_faults() -> None:
    faults = {mode: _run(STEPS, mode) for mode in ("system", "keep")}
    print(f"page faults in 200 steps of 128 64-64-10 members: {faults['keep']:,} with freed memory kept, "
          f"{faults['system']:,} with the default ({faults['system'] / max(faults['keep'], 1):.1f}x)")


PEAK = """
import resource, subprocess, sys
run = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(run.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
"""


def tune_peak(limit_mb: int) -> None:
    """The largest peak of the run's processes (the driver and the workers it waited for), read
    by a fresh parent of its own so that no earlier process's peak hides it."""
    with tempfile.TemporaryDirectory() as d:
        cfg = Path(d) / "wide.toml"
        cfg.write_text(WIDE.format(limit=limit_mb))
        out = subprocess.run([sys.executable, "-c", PEAK, sys.executable, "-m", "purelearn.cli", "tune", str(cfg),
                              "--store", str(Path(d) / "w.db"), "--json"], capture_output=True, text=True, cwd=d)
    code, peak = out.stdout.split()
    print(f"tune, 32 trials of 784-(1024..2048)-10 on mnist5k, --memory-limit {limit_mb} MB: exit {code}, largest "
          f"process peak {int(peak) / 2**20:,.0f} MB")


if __name__ == "__main__":
    print(machine())
    estimate_against_real()
    page_faults()
    for limit in (100, 400, 1000):
        tune_peak(limit)
