"""A population's update replayed from a captured CUDA graph (§5.1: keep the device busy).

On a GPU a population's update is about thirty short kernels, each launched from Python; for
the small networks a search tries, launching them can take longer than running them. Plain SGD
writes every parameter in place, so an update's kernels read and write the same addresses each
time: captured once, the whole update is then one launch. Only the minibatch indices change between
updates; they are copied into a fixed buffer before each replay, and the losses come back in
fixed tensors, overwritten by the next replay.

A graph holds the addresses of the population's tensors, so it is forgotten whenever they move
(members leave and the stacked tensors are compacted); the next update then runs eagerly on the
capture stream (CUDA's libraries set themselves up on a stream's first use, which capture
forbids), and the one after is captured; an update of another shape runs eagerly. On a CPU
there is nothing to capture: replaying calls the same function on the same buffers, which lets
the CPU check the buffer discipline the GPU relies on.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

Update = Callable[[torch.Tensor], tuple[torch.Tensor, ...]]


class Replay:
    """Runs ``update(idx)`` (minibatch indices [P, B] to the update's outputs) as a replayed graph."""

    def __init__(self, device: torch.device):
        self.cuda, self.device = device.type == "cuda", device
        self.stream = torch.cuda.Stream(device) if self.cuda else None
        # One memory pool for every graph of this population: a forgotten graph's temporaries
        # are reused by the next capture instead of staying cached.
        self.pool = torch.cuda.graph_pool_handle() if self.cuda else None
        self.captures = self.replays = 0
        self.off = False                 # set when a capture failed
        self.forget()

    def forget(self) -> None:
        """Drop the captured update: the tensors it reads or writes were replaced."""
        self.graph = self.idx = self.out = self.update = None
        self.warm = False

    def __call__(self, update: Update, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.off:
            return update(idx)
        if self.idx is not None and idx.shape == self.idx.shape:
            self.idx.copy_(idx)
            return self._replay()
        if self.idx is not None:             # another shape: the graph stays for the next
            return update(idx)
        if not self.warm:
            self.warm = True
            return self._on_capture_stream(update, idx)
        return self._capture(update, idx)

    def _on_capture_stream(self, update: Update, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not self.cuda:
            return update(idx)
        self.stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self.stream):
            out = update(idx)
        torch.cuda.current_stream(self.device).wait_stream(self.stream)
        return out

    def _capture(self, update: Update, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self.idx = idx.clone(memory_format=torch.contiguous_format)
        if not self.cuda:                    # "capturing" runs it: counted as captured and replayed
            self.captures, self.replays = self.captures + 1, self.replays + 1
            self.update = update
            self.out = tuple(t.clone() for t in update(self.idx))
            return self.out
        self.graph = torch.cuda.CUDAGraph()
        self.stream.wait_stream(torch.cuda.current_stream(self.device))
        # capture_begin/end rather than torch.cuda.graph, which synchronizes the device and
        # empties the allocator's cache at every capture; "thread_local": another thread's CUDA
        # calls (a caller's) may go on during the capture.
        try:
            with torch.cuda.stream(self.stream):
                self.graph.capture_begin(self.pool, capture_error_mode="thread_local")
                try:
                    self.out = update(self.idx)
                finally:
                    self.graph.capture_end()
        except RuntimeError as e:   # an update CUDA can't capture: it still trains, launched
            warnings.warn(f"an update could not be captured as a CUDA graph, it runs uncaptured: {e}",
                          RuntimeWarning, stacklevel=2)
            self.forget()
            self.off = True
            return update(idx)
        torch.cuda.current_stream(self.device).wait_stream(self.stream)
        self.captures += 1
        return self._replay()            # capturing ran nothing: this update runs now

    def _replay(self) -> tuple[torch.Tensor, ...]:
        self.replays += 1
        if self.cuda:
            self.graph.replay()
        else:
            for kept, new in zip(self.out, self.update(self.idx)):
                kept.copy_(new)
        return self.out
