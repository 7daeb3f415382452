"""The broker nodes a daemon may connect to, and which one to try next.

``[broker] url`` may name several nodes of one RabbitMQ cluster.  :class:`Nodes` puts
them in an order once, at start — **shuffled**, so that a neighbourhood of meters (and
a set of pvsimd) started with the same configuration spreads its connections over the
nodes instead of all landing on the first one, and a node that goes away takes only
its share of the connections with it — and then keeps to that order:

* a connection attempt tries the nodes one after another, beginning with the one in
  use last (:meth:`Nodes.to_try`); the session loop's backoff applies only once every
  node has failed (one attempt is one round over all of them);
* when the session on a node is lost (:meth:`Nodes.lost`), the next round begins with
  the *next* node, so a node that went away is tried last, not first.

A single URL is no special case: one node, one try per attempt, as before there were
several.  No I/O here; the shuffle's randomness comes in from the caller.
"""

from __future__ import annotations

import random
from collections.abc import Sequence


class Nodes:
    """The cluster's node URLs in this daemon's order, and where the next round starts."""

    def __init__(self, urls: Sequence[str], rng: random.Random | None = None):
        order = list(urls)
        if not order:
            raise ValueError("no broker URL")
        if len(order) > 1:
            (rng or random.SystemRandom()).shuffle(order)
        self.urls: tuple[str, ...] = tuple(order)
        self._first = 0  # where the next round starts
        self.current: str | None = None  # the node of the open session

    def to_try(self) -> tuple[str, ...]:
        """The nodes in the order of the next connection attempt."""
        return self.urls[self._first :] + self.urls[: self._first]

    def connected(self, url: str) -> None:
        """A session on ``url`` is open: the next round (after it ends) starts here."""
        self.current = url
        self._first = self.urls.index(url)

    def lost(self) -> None:
        """The session on the current node was lost: the next round starts with the
        node after it."""
        if self.current is not None:
            self._first = (self.urls.index(self.current) + 1) % len(self.urls)
        self.current = None

    def __len__(self) -> int:
        return len(self.urls)
