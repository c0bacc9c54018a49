"""Indexes kept as ``dict[key, set[member]]`` (the ledger's by-uid and by-name indexes,
the peer planner's collision indexes): a key exists exactly while its set is non-empty,
so ``key in index`` means "someone holds it"."""

from typing import TypeVar

K = TypeVar("K")
M = TypeVar("M")


def discard_member(index: dict[K, set[M]], key: K, member: M) -> None:
    """Remove ``member`` from the set under ``key``; drop the key once its set is empty."""
    members = index.get(key)
    if members is not None:
        members.discard(member)
        if not members:
            del index[key]
