"""Host CPU time of a guest's QEMU process inside a tool's measured window (CPU per I/O, per Gbit)."""

from __future__ import annotations

import threading

from vbench.core import procs


class CpuWindow:
    """CPU time a process (QEMU) uses inside a tool's measured window, sampled by timers.

    The window is [delay, delay+length] after the command starts (ramp/omit time left out),
    shrunk by a margin at both ends so that both samples fall inside the tool's own window even
    with SSH start-up lag; ``rate()`` is CPU-seconds per second of that window.
    """

    MARGIN_S = 0.3

    def __init__(self, pid: int | None, delay: float, length: float) -> None:
        self.pid = pid
        self.values: list[float | None] = []
        m = min(self.MARGIN_S, length / 4)
        self.length = length - 2 * m
        self._timers = [threading.Timer(delay + m, self._sample),
                        threading.Timer(delay + m + self.length, self._sample)]

    def _sample(self) -> None:
        self.values.append(procs.cpu_seconds(self.pid) if self.pid else None)

    def __enter__(self) -> "CpuWindow":
        for t in self._timers:
            t.daemon = True
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        for t in self._timers:
            t.cancel()

    def rate(self) -> float | None:
        if len(self.values) == 2 and None not in self.values and self.length > 0:
            return (self.values[1] - self.values[0]) / self.length  # type: ignore[operator]
        return None
