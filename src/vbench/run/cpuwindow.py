"""Host-side readings of a guest's QEMU inside a tool's measured window: its CPU time (CPU per I/O,
per Gbit) and KVM's exit counters of its VM (exits per I/O)."""

from __future__ import annotations

import threading
from typing import Callable, Generic, Self, TypeVar

from vbench.core import procs
from vbench.host.kvmstat import KvmCounters, all_absent

T = TypeVar("T")


class SampledWindow(Generic[T]):
    """Two readings of ``read()`` inside a tool's measured window, taken by timers.

    The window is [delay, delay+length] after the command starts (ramp/omit time left out),
    shrunk by a margin at both ends so that both samples fall inside the tool's own window even
    with SSH start-up lag; :attr:`length` is the time between the two samples.
    """

    MARGIN_S = 0.3

    def __init__(self, read: Callable[[], T], delay: float, length: float) -> None:
        self.read = read
        self.values: list[T] = []
        m = min(self.MARGIN_S, length / 4)
        self.length = length - 2 * m
        self._timers = [threading.Timer(delay + m, self._sample),
                        threading.Timer(delay + m + self.length, self._sample)]

    def _sample(self) -> None:
        self.values.append(self.read())

    def __enter__(self) -> Self:
        for t in self._timers:
            t.daemon = True
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        for t in self._timers:
            t.cancel()

    def closed(self) -> bool:
        """Both samples were taken (the window opened and closed before the body ended)."""
        return len(self.values) == 2 and self.length > 0


class CpuWindow(SampledWindow[float | None]):
    """CPU time a process (QEMU) uses inside the window; ``rate()`` is CPU-seconds per second."""

    def __init__(self, pid: int | None, delay: float, length: float) -> None:
        self.pid = pid
        super().__init__(lambda: procs.cpu_seconds(pid) if pid else None, delay, length)

    def rate(self) -> float | None:
        if self.closed() and None not in self.values:
            return (self.values[1] - self.values[0]) / self.length  # type: ignore[operator]
        return None


class ExitWindow(SampledWindow[KvmCounters]):
    """KVM's exit counters of a guest's VM inside the window, per second, by metric.

    ``read`` is None when there is nothing to read (a TCG guest: no rows at all, not zeros)."""

    def __init__(self, read: Callable[[], KvmCounters] | None, delay: float,
                 length: float) -> None:
        self.enabled = read is not None
        super().__init__(read or (lambda: KvmCounters()), delay, length)

    def per_second(self) -> dict[str, float]:
        if not (self.enabled and self.closed()):
            return {}
        first, last = self.values
        return {m: (last.values[m] - v) / self.length for m, v in first.values.items()
                if m in last.values and last.values[m] >= v}  # a counter that went back: absent

    def absent(self) -> dict[str, str]:
        """Why each metric the window has no rate for is absent ({} when it was not read)."""
        if not self.enabled:
            return {}
        if not self.closed():
            return all_absent("the measured window ended before its counters were read "
                              "twice").absent
        why = {**self.values[1].absent, **self.values[0].absent}
        rates = self.per_second()
        for m in self.values[0].values:
            if m not in rates and m not in why:
                why[m] = "the counter went backwards inside the window (reset or a new VM)"
        return why
