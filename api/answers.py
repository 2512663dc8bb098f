"""Answers worth sharing: a heavy read asked by many callers at once (a dashboard's statistics)
is computed once per question and worker, and kept for a few seconds.

`Shared.get(key, compute)` returns the answer stored under `key` while it is younger than the
time to live; otherwise one caller computes it and every caller asking for the same key
meanwhile waits for that one answer (or that one error) instead of computing it again. Answers
are kept as the bytes sent, so a hit costs neither a query nor encoding, and the whole store is
bounded by bytes (oldest used dropped first).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future


class Shared:
    def __init__(self, ttl_s: float, max_bytes: int) -> None:
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._kept: OrderedDict[Hashable, tuple[float, bytes]] = OrderedDict()  # key -> (expires, answer)
        self._bytes = 0
        self._computing: dict[Hashable, Future[bytes]] = {}
        self.computed = 0  # answers computed (the rest were shared or kept)

    def get(self, key: Hashable, compute: Callable[[], bytes]) -> tuple[bytes, float]:
        """The answer for `key` and its age in seconds (0 when computed for this call)."""
        with self._lock:
            kept = self._kept.get(key)
            now = time.monotonic()
            if kept is not None and kept[0] > now:
                self._kept.move_to_end(key)
                return kept[1], self.ttl_s - (kept[0] - now)
            waiting = self._computing.get(key)
            if waiting is None:
                mine: Future[bytes] = Future()
                self._computing[key] = mine
        if waiting is not None:
            return waiting.result(), 0.0
        try:
            answer = compute()
        except BaseException as exc:
            mine.set_exception(exc)
            raise
        finally:
            with self._lock:
                del self._computing[key]
        with self._lock:
            self.computed += 1
            self._keep(key, answer)
        mine.set_result(answer)
        return answer, 0.0

    def _keep(self, key: Hashable, answer: bytes) -> None:
        if self.ttl_s <= 0 or len(answer) > self.max_bytes:
            return
        old = self._kept.pop(key, None)
        if old is not None:
            self._bytes -= len(old[1])
        self._kept[key] = (time.monotonic() + self.ttl_s, answer)
        self._bytes += len(answer)
        while self._bytes > self.max_bytes:
            _, (_, dropped) = self._kept.popitem(last=False)
            self._bytes -= len(dropped)
