"""A background thread that samples memory and pids while a cell runs."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from .model import Reading

log = logging.getLogger(__name__)


class Sampler:
    """A background thread that samples memory and pids while a cell runs.

    Between cells it blocks on an event: no wake-ups, no cost. It holds no lock while
    it works, so ``begin_cell``/``end_cell`` never wait for it; each cell's maxima live
    in their own small list, replaced (not cleared) at a cell's start, so a sample that
    lands late goes into the old cell's list and not into the new cell's.

    Args:
        probe: returns raw memory use, pids, and a full reading when it has one.
        interval: seconds between samples.
        delay: seconds into a cell before the first sample.
        name: the thread's name.
        sleep: between samples, sleep rather than wait on the cell's end. A plain sleep
            costs half the CPU of a timed wait; for a short interval it is as good.
        idle_refresh: between cells, probe this often (seconds) to keep
            :attr:`last_reading` fresh; None: never.
    """

    def __init__(
        self,
        probe: Callable[[], tuple[int, int, Reading | None]],
        interval: float,
        delay: float,
        name: str,
        *,
        sleep: bool = False,
        idle_refresh: float | None = None,
    ) -> None:
        self._probe = probe
        self._sleep = sleep
        self._idle_refresh = idle_refresh
        self._interval = interval
        self._delay = delay
        self._running = threading.Event()  # set while a cell runs
        self._ended = threading.Event()  # set when it ends: cuts the sampler's sleep short
        self._idle = threading.Event()  # clear while a probe is in flight
        self._idle.set()
        self._closed = False
        self._maxima = [0, 0]  # memory, pids of the current cell
        self.last_reading: Reading | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def start_cell(self) -> None:
        self._maxima = [0, 0]
        self._ended.clear()
        self._running.set()

    def stop_cell(self) -> tuple[int, int]:
        """End the cell's sampling; returns the highest memory and pids seen."""
        self._running.clear()
        self._ended.set()
        memory, pids = self._maxima
        return memory, pids

    def wait_idle(self, timeout: float) -> tuple[int, int]:
        """Wait for a sample in flight to land; returns the cell's maxima."""
        self._idle.wait(timeout)
        memory, pids = self._maxima
        return memory, pids

    def note(self, reading: Reading) -> None:
        """Keep ``reading`` as the latest measurement unless a later one is there."""
        last = self.last_reading
        if last is None or reading.at >= last.at:
            self.last_reading = reading

    def close(self) -> None:
        self._closed = True
        self._ended.set()
        self._running.set()

    def _refresh(self) -> None:
        """Between cells: take a reading so that the next cell has a recent baseline."""
        last = self.last_reading
        if self._idle_refresh and last and time.monotonic() - last.at < self._idle_refresh:
            return
        self._idle.clear()
        try:
            _, _, reading = self._probe()
        except Exception:
            log.debug("idle usage reading failed", exc_info=True)
            return
        finally:
            self._idle.set()
        if reading is not None:
            self.note(reading)

    def _run(self) -> None:
        while True:
            if not self._running.wait(self._idle_refresh):
                self._refresh()
                continue
            if self._closed:
                return
            maxima = self._maxima
            if self._delay and self._ended.wait(self._delay):
                continue
            while not self._ended.is_set() and maxima is self._maxima:
                self._idle.clear()
                try:
                    memory, pids, reading = self._probe()
                except Exception:
                    memory = pids = 0
                    reading = None
                finally:
                    self._idle.set()
                if memory > maxima[0]:
                    maxima[0] = memory
                if pids > maxima[1]:
                    maxima[1] = pids
                if reading is not None:
                    self.note(reading)
                if self._sleep:
                    time.sleep(self._interval)
                else:
                    self._ended.wait(self._interval)
            if self._closed:
                return
