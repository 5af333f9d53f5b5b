"""The one interface both judges implement, and its failures.

A judge turns a ``Case`` into a ``Verdict``. Besides that it fails three ways: ``UnreadableReply``
(no reply in the format after its attempts: that trajectory is left as it was), ``ModelError`` (the
model failed for good after retries: likewise) and ``FatalModelError`` (a bad key, an unknown model:
judging stops).
"""
from __future__ import annotations

from abc import ABC, abstractmethod

from store.verdicts import Verdict

from .case import Case


class Judge(ABC):
    #: Stored as the tags' annotator and the score's model.
    model: str
    #: Trajectories judged at once.
    concurrency: int = 1

    @property
    def requests(self) -> int:
        """Requests sent to a model (retries included)."""
        return 0

    @property
    def retries(self) -> int:
        return 0

    @abstractmethod
    async def verdict(self, case: Case) -> Verdict:
        """What the judge says of ``case``: a verdict on each asked call and on the answer when asked."""

    async def aclose(self) -> None:
        """Release connections; the default has none."""
