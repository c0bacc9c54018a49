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


#: Who holds one key of an index where a key almost always has one holder (the peer
#: planner's keys, addresses and routed prefixes): that holder's name itself, a set only
#: while two or more share it. An empty set is 216 bytes; at 5000 members and three such
#: indexes, one-element sets were about a sixth of the planner's memory.
Holders = str | set[str]


def add_holder(index: dict[K, Holders], key: K, name: str) -> None:
    held = index.get(key)
    if held is None:
        index[key] = name
    elif isinstance(held, str):
        if held != name:
            index[key] = {held, name}
    else:
        held.add(name)


def discard_holder(index: dict[K, Holders], key: K, name: str) -> None:
    """Remove ``name`` from ``key``'s holders; the key goes with its last holder."""
    held = index.get(key)
    if held is None:
        return
    if isinstance(held, str):
        if held == name:
            del index[key]
        return
    held.discard(name)
    if len(held) == 1:
        index[key] = next(iter(held))
    elif not held:
        del index[key]


def held_by_others(held: Holders | None, name: str) -> bool:
    """Whether anyone but ``name`` holds it (``held``: an index's entry, or None)."""
    if held is None:
        return False
    if isinstance(held, str):
        return held != name
    return len(held) > 1 or name not in held
