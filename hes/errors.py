"""The root of the head-end's own errors: ``HesError``, beside the protocol stack's ``DlmsError``.

``protocols.errors.DlmsError`` is for what happens on the wire (decoding, the association, the
transport). Everything the head-end refuses or fails on its own account (a bad setting, an unknown
meter, a database that is down, a plan asked for wrongly, counters used up) is a ``HesError``. Both
say whether a retry can help (``retryable``): the scheduler decides from that alone, and the command
line prints either as one line. ``FAILURES`` is the pair, for the places that handle both alike.
"""

from __future__ import annotations

from protocols.errors import DlmsError

__all__ = ["FAILURES", "HesError"]


class HesError(Exception):
    """Root of the head-end's application errors (not the protocol's)."""

    #: Whether repeating the same operation later may succeed.
    retryable: bool = False


#: Every typed error of the head-end and of its protocol stack.
FAILURES: tuple[type[Exception], ...] = (HesError, DlmsError)
