"""Seconds spent inside model forward passes, for the share of wall time the models actually compute.

A :class:`ForwardClock` is attached to the modules whose ``forward`` is the model's work (whisper's encoder and
decoder, pyannote's segmentation model) and adds up the time between their pre- and post-forward hooks; code that
calls a model through another entry point (a scripted VAD, pyannote's embedding trunk) times itself with
:meth:`ForwardClock.timing`. Nested timings count once.

Example
-------
>>> clock = ForwardClock()
>>> clock.attach(torch.nn.Linear(4, 4))                   # doctest: +SKIP
>>> with clock.timing():
...     pass
>>> clock.seconds >= 0.0
True
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch


class ForwardClock:
    """Accumulates wall seconds spent in model forward passes (one clock per stage, one thread)."""

    def __init__(self, synchronize: bool = False) -> None:
        self.seconds = 0.0  # total so far
        self.synchronize = synchronize  # on a GPU: wait for queued kernels at both ends, or only launches count
        self._depth = 0  # open timings: nested ones are already inside an outer one
        self._started = 0.0

    def attach(self, module: torch.nn.Module) -> None:
        """Time every call of ``module`` (its forward hooks)."""
        module.register_forward_pre_hook(lambda *_: self._enter())
        module.register_forward_hook(lambda *_: self._exit())

    @contextmanager
    def timing(self) -> Iterator[None]:
        """Time a block that runs a model."""
        self._enter()
        try:
            yield
        finally:
            self._exit()

    def _enter(self) -> None:
        if self._depth == 0:
            if self.synchronize:
                torch.cuda.synchronize()
            self._started = time.perf_counter()
        self._depth += 1

    def _exit(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            if self.synchronize:
                torch.cuda.synchronize()
            self.seconds += time.perf_counter() - self._started
