"""The allocation invariants under random sequences of operations (hypothesis stateful).

A model of the world (live agents, what each was given, who released what when) is
kept next to the ledger; after every step the invariants of DESIGN.md §3 are checked:
never a duplicate, never outside the pool or on a network/broadcast address, held
addresses never change, cool-down and retention respected, exhaustion exactly at
capacity. Restarting the operator (encode every shard, decode a fresh ledger) is one
of the steps, so the order of allocation must not depend on in-memory history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import ip_network

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from reef.ipam import (
    AllocationRequest,
    IPAddress,
    Ledger,
    Outcome,
    Policy,
    allocate,
    decode_ledger,
)

COOLDOWN = timedelta(minutes=5)
RETENTION = timedelta(hours=2)
NAMES = [f"node-{i}" for i in range(12)]
STEPS = st.sampled_from(
    [timedelta(0), timedelta(minutes=1), COOLDOWN, timedelta(minutes=30), RETENTION]
)


@dataclass
class Release:
    name: str
    uid: str
    at: datetime


class AllocationMachine(RuleBasedStateMachine):
    cidrs: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self.policy = Policy(reuse_cooldown=COOLDOWN, retention=RETENTION)
        self.ledger = Ledger(self.cidrs, self.policy)
        self.now = datetime(2025, 1, 1, tzinfo=UTC)
        self.live: dict[str, str] = {}  # uid -> name
        self.given: dict[str, tuple[IPAddress, ...]] = {}  # live uid -> addresses
        self.released: dict[IPAddress, Release] = {}  # address -> its last release
        self.serial = 0
        self.networks = [ip_network(cidr) for cidr in self.cidrs]
        self.capacities = [pool.capacity for pool in self.ledger.pools]

    def _new_uid(self) -> str:
        self.serial += 1
        return f"uid-{self.serial}"

    def _free_names(self) -> list[str]:
        return [name for name in NAMES if name not in self.live.values()]

    def _unavailable_to_strangers(self, version: int) -> int:
        held = sum(1 for given in self.given.values() for a in given if a.version == version)
        cooling = sum(
            1
            for address, release in self.released.items()
            if address.version == version
            and self.now < release.at + COOLDOWN
            and not any(address in given for given in self.given.values())
        )
        return held + cooling

    def _retained_for(self, name: str) -> set[IPAddress]:
        return {
            address
            for address, release in self.released.items()
            if release.name == name
            and self.now < release.at + RETENTION
            and not any(address in given for given in self.given.values())
        }

    def _record(self, uid: str, name: str, addresses: tuple[IPAddress, ...]) -> None:
        for address in addresses:
            release = self.released.get(address)
            if release is not None and release.name != name:
                assert self.now >= release.at + COOLDOWN, f"{address} reused during cool-down"
        self.live[uid] = name
        self.given[uid] = addresses

    @precondition(lambda self: self._free_names())
    @rule(data=st.data())
    def allocate_one_new_agent(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(self._free_names()))
        uid = self._new_uid()
        retained = self._retained_for(name)
        exhausted_family = any(
            self._unavailable_to_strangers(pool.version) >= capacity
            and not any(address.version == pool.version for address in retained)
            for pool, capacity in zip(self.ledger.pools, self.capacities, strict=True)
        )
        result = allocate(self.ledger, [AllocationRequest(uid, name)], self.now).results[0]
        if exhausted_family:
            assert result.outcome is Outcome.POOL_EXHAUSTED
        else:
            assert result.outcome is Outcome.ALLOCATED, result.message
            for version in {address.version for address in retained}:
                mine = {address for address in retained if address.version == version}
                assert mine & set(result.addresses), "retained address not returned to its name"
        if result.outcome is Outcome.ALLOCATED:
            self._record(uid, name, result.addresses)

    @precondition(lambda self: self._free_names())
    @rule(count=st.integers(1, 5), data=st.data())
    def allocate_a_batch(self, count: int, data: st.DataObject) -> None:
        names = data.draw(
            st.lists(st.sampled_from(self._free_names()), min_size=1, max_size=count, unique=True)
        )
        requests = [AllocationRequest(self._new_uid(), name) for name in names]
        for result in allocate(self.ledger, requests, self.now).results:
            if result.outcome is Outcome.ALLOCATED:
                self._record(result.request.uid, result.request.name, result.addresses)

    @precondition(lambda self: self._free_names())
    @rule(data=st.data())
    def request_a_specific_address(self, data: st.DataObject) -> None:
        network = data.draw(st.sampled_from(self.networks))
        offset = data.draw(st.integers(-1, network.num_addresses))
        address = network.network_address + offset
        name = data.draw(st.sampled_from(self._free_names()))
        uid = self._new_uid()
        request = AllocationRequest(uid, name, (address,))
        result = allocate(self.ledger, [request], self.now).results[0]
        if result.outcome is Outcome.ALLOCATED:
            assert address in result.addresses
            self._record(uid, name, result.addresses)
        else:
            assert self.ledger.addresses_of(uid) == ()

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def re_request_is_idempotent(self, data: st.DataObject) -> None:
        uid = data.draw(st.sampled_from(sorted(self.live)))
        batch = allocate(self.ledger, [AllocationRequest(uid, self.live[uid])], self.now)
        assert batch.results[0].addresses == self.given[uid]
        assert batch.changed_shards == frozenset()

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def release_an_agent(self, data: st.DataObject) -> None:
        uid = data.draw(st.sampled_from(sorted(self.live)))
        name = self.live.pop(uid)
        for address in self.given.pop(uid):
            self.released[address] = Release(name, uid, self.now)
        self.ledger.release(uid, self.now)

    @rule(step=STEPS)
    def time_passes(self, step: timedelta) -> None:
        self.now += step

    @rule()
    def collect_garbage(self) -> None:
        self.ledger.collect_garbage(self.now)

    @rule()
    def operator_restarts(self) -> None:
        shards = {shard: self.ledger.encode_shard(shard) for shard in self.ledger.shard_ids()}
        ledger, problems = decode_ledger(self.cidrs, shards, self.policy)
        assert problems == []
        assert dict(ledger.entries()) == dict(self.ledger.entries())
        self.ledger = ledger

    @invariant()
    def ledger_agrees_with_the_model(self) -> None:
        seen: set[IPAddress] = set()
        for uid, given in self.given.items():
            assert self.ledger.addresses_of(uid) == given
            assert len(given) == len(self.cidrs)
            for address in given:
                assert address not in seen, f"{address} given twice"
                seen.add(address)
                pool = next(p for p in self.ledger.pools if p.version == address.version)
                assert pool.refusal(address) is None
        allocated = [owner for _, owner in self.ledger.entries() if owner.state == "allocated"]
        assert len(allocated) == sum(len(given) for given in self.given.values())


class DualStackSlash29(AllocationMachine):
    cidrs = ("10.0.0.0/29", "fd00::/125")


class SingleStackSlash30(AllocationMachine):
    cidrs = ("192.168.7.0/30",)


class TinyIPv6(AllocationMachine):
    cidrs = ("fd00:1::/126",)


_settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestDualStackSlash29 = _settings(DualStackSlash29).TestCase
TestSingleStackSlash30 = _settings(SingleStackSlash30).TestCase
TestTinyIPv6 = _settings(TinyIPv6).TestCase
