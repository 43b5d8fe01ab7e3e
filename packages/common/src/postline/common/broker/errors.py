"""What publishing raises, in a module of its own so every part of the broker package can."""

from __future__ import annotations


class BrokerUnavailable(Exception):
    """The broker did not confirm a publish (down, slow, or refused it)."""
