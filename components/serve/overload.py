"""Load shedding above capacity: the event loop's scheduling delay against a budget.

A request the server cannot serve promptly waits where the concurrency limiter cannot see
it: in the kernel's socket buffers and in the event loop's ready queue, before any ASGI
code runs. Both show up as event-loop lag: a timer that should fire every `interval`
seconds fires late by about as long as a ready request waits for the loop. A small task
(`LoopLag.run`) measures that lateness: every `quiet_s` (the budget itself) while the loop
keeps up, every `interval_s` (5 ms) once the lag passes half the budget, so an idle
server does not wake 200 times a second; while the last two measurements exceed the budget
(`--max-queue-ms`), prediction requests are answered 503 + Retry-After before any work
is done (components/serve/api/fastpath.py), which is cheap enough that the loop catches up,
and the requests it does accept keep a bounded wait. Health, readiness and metrics are
never shed. The per-request cost is one attribute read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

DEFAULT_INTERVAL_S = 0.005
# With shedding off the lag is only a metric: a coarse sample is enough.
UNBUDGETED_QUIET_S = 0.05


class LoopLag:
    """The event loop's lag (seconds) and whether it is above the budget.

    `budget_s` <= 0 turns shedding off (the lag is still measured and reported).
    """

    def __init__(
        self,
        budget_s: float,
        interval_s: float = DEFAULT_INTERVAL_S,
        on_sample: Callable[[float], None] | None = None,
    ) -> None:
        self.budget_s = budget_s
        self.interval_s = interval_s
        self.quiet_s = max(interval_s, budget_s if budget_s > 0 else UNBUDGETED_QUIET_S)
        self.on_sample = on_sample
        self.lag_s = 0.0
        self.shedding = False
        self._over = False

    def observe(self, lag_s: float) -> None:
        """One measurement: shed until the next one if it and the one before it are above
        the budget. A single stall (a model load or swap holding the GIL, a GC pause) is
        not overload: the requests it delayed are served (hot swaps never fail requests);
        a loop that stays late sheds from its second late sample on."""
        self.lag_s = max(0.0, lag_s)
        over = 0 < self.budget_s < self.lag_s
        self.shedding = over and self._over
        self._over = over
        if self.on_sample is not None:
            self.on_sample(self.lag_s)

    def retry_after_s(self) -> int:
        """Whole seconds a refused client should wait (at least 1)."""
        return max(1, int(self.lag_s + 0.999))

    def next_interval_s(self) -> float:
        """Sample fast while the lag is past half the budget (or shedding), else slowly."""
        if self.budget_s > 0 and (self._over or self.lag_s * 2 > self.budget_s):
            return self.interval_s
        return self.quiet_s

    async def run(self) -> None:
        """Measure forever (cancel to stop): how late each sleep wakes up."""
        loop = asyncio.get_running_loop()
        while True:
            interval = self.next_interval_s()
            due = loop.time() + interval
            await asyncio.sleep(interval)
            self.observe(loop.time() - due)
