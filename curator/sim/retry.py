"""When and how long to wait before asking a model again.

Retried: 429, 408, 409, 5xx, timeouts, connection errors and bodies that are
not a chat completion (a proxy's HTML page, JSON cut off mid-way). Waits grow
exponentially with full jitter (so many trajectories that failed together do
not come back together); a server's ``Retry-After`` (seconds or HTTP date) or
``retry-after-ms`` wins when it says how long.
"""
from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass
from typing import Mapping

RETRY_STATUSES = frozenset({408, 409, 429})


def retryable_status(status: int) -> bool:
    return status in RETRY_STATUSES or status >= 500


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds the server asked us to wait, or None."""
    if not headers:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        return max(0.0, email.utils.mktime_tz(parsed) - time.time()) if parsed else None


@dataclass(frozen=True)
class Backoff:
    base: float = 0.5
    cap: float = 20.0
    #: A longer Retry-After than this is clipped: a run should not stall for minutes on one hint.
    max_retry_after: float = 60.0

    def delay(self, attempt: int, hinted: float | None, rng: random.Random) -> float:
        """How long to wait before attempt ``attempt + 1`` (``attempt`` counts from 0)."""
        if hinted is not None:
            return min(hinted, self.max_retry_after)
        return rng.uniform(0, min(self.cap, self.base * 2 ** attempt))
