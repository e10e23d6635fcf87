"""The peer-selection policy (p2pnode/net/selection.py), driven with a fake clock and a seeded
random source: bounded sessions, stable and rotating slots, diversity against one host with many
ids, inbound admission, backoff (no tight loops) and bounded memory."""

from __future__ import annotations

import itertools
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pnode.net.selection import (
    InboundSession,
    PeerSelection,
    SelectionLimits,
    Slot,
    address_group,
    net_group,
)

LIMITS = SelectionLimits(rotate_every=240.0, retry_min=0.5, retry_max=60.0,
                         refused_backoff=30.0, healthy_after=30.0, forget_after=600.0)


def nid(i: int) -> bytes:
    return i.to_bytes(4, "big") * 8


def learn_hosts(sel: PeerSelection, hosts: int, now: float = 0.0, *, ids_per_host: int = 1,
                subnet: str = "10.0.0", first: int = 0) -> list[bytes]:
    ids = []
    for h in range(hosts):
        for k in range(ids_per_host):
            node_id = nid(first + h * 1000 + k)
            address = f"{subnet}.{h + 1}"
            sel.learn(node_id, [address], [f"{address}:7654"], now)
            ids.append(node_id)
    return ids


def connect_all(sel: PeerSelection, now: float) -> tuple[bytes, ...]:
    """Plan and let every dial succeed; return what was dialled."""
    plan = sel.plan(now)
    for node_id in plan.dial:
        sel.session_opened(node_id, now)
    for node_id in plan.drop:
        sel.session_closed(node_id, now, by_peer=False)
    return plan.dial


def test_outbound_sessions_are_bounded_and_split_into_stable_and_rotating() -> None:
    """With 300 hosts announced, a node dials 8 of them: 5 stable, 3 rotating, no more later."""
    sel = PeerSelection(LIMITS, random.Random(1))
    learn_hosts(sel, 300)
    dialled = connect_all(sel, 0.0)
    assert len(dialled) == 8
    assert Counter(sel.picks.values()) == {Slot.STABLE: 5, Slot.ROTATING: 3}
    assert connect_all(sel, 1.0) == ()  # nothing more while the slots are full


def test_a_lost_session_frees_its_slot_for_another_peer() -> None:
    """When a picked peer's session ends, its slot is refilled (by another peer: it backs off)."""
    sel = PeerSelection(LIMITS, random.Random(2))
    learn_hosts(sel, 20)
    first = connect_all(sel, 0.0)
    sel.session_closed(first[0], 5.0, by_peer=False)
    again = connect_all(sel, 5.0)
    assert len(again) == 1 and again[0] != first[0]
    assert len(sel.picks) == 8


def test_a_rotating_slot_changes_peer_every_few_minutes_and_stable_ones_stay() -> None:
    """Every ~4 minutes one rotating pick is dropped for a random other; stable picks stay."""
    sel = PeerSelection(LIMITS, random.Random(3))
    learn_hosts(sel, 50)
    connect_all(sel, 0.0)
    stable = {n for n, s in sel.picks.items() if s is Slot.STABLE}
    seen_rotating: set[bytes] = set()
    rotations = 0
    for second in range(1, 3600):  # one simulated hour
        plan = sel.plan(float(second))
        for node_id in plan.drop:
            sel.session_closed(node_id, float(second), by_peer=False)
        for node_id in plan.dial:
            sel.session_opened(node_id, float(second))
        rotations += len(plan.drop)
        seen_rotating |= {n for n, s in sel.picks.items() if s is Slot.ROTATING}
        assert len(sel.picks) <= 8
    assert {n for n, s in sel.picks.items() if s is Slot.STABLE} == stable
    # 3600 s / 240 s ± 25 %: 12 to 19 rotations, each bringing (almost always) a new peer
    assert 11 <= rotations <= 20, rotations
    assert len(seen_rotating) >= 3 + rotations - 3


def test_one_host_with_many_ids_gets_one_outbound_slot_and_no_more_than_its_share() -> None:
    """An attacker announcing 200 ids from one address holds at most one of our 8 slots, and
    a rotating slot lands on it about as often as on any one honest host."""
    attacker_picks = 0
    trials = 300
    for seed in range(trials):
        sel = PeerSelection(LIMITS, random.Random(seed))
        # the attacker: one address on the LAN's subnet; honest hosts, one id each
        for k in range(200):
            sel.learn(nid(k), ["10.0.0.200"], ["10.0.0.200:7654"], 0.0)
        learn_hosts(sel, 11, first=500_000)
        connect_all(sel, 0.0)
        attackers = [n for n in sel.picks if int.from_bytes(n[:4], "big") < 500_000]
        assert len(attackers) <= 1
        attacker_picks += len(attackers)
    # 8 slots over 12 hosts: each host is picked with probability 8/12 (one slot at most)
    assert attacker_picks / trials == pytest.approx(8 / 12, abs=0.12)


def test_the_known_table_is_bounded_overall_and_per_host() -> None:
    """Announcements cannot grow memory: 16 ids per host at most, 1024 candidates in all."""
    sel = PeerSelection(LIMITS, random.Random(4))
    learn_hosts(sel, 1, ids_per_host=500)
    assert sel.known_count == LIMITS.max_known_per_group
    for block in range(6):
        learn_hosts(sel, 250, subnet=f"10.1.{block}", first=(block + 1) * 1_000_000)
    assert sel.known_count == LIMITS.max_known


def test_distinct_subnets_are_preferred_for_outbound_picks() -> None:
    """Picks spread over subnets (/24) before doubling up in one."""
    sel = PeerSelection(LIMITS, random.Random(5))
    for net in range(8):
        learn_hosts(sel, 10, subnet=f"10.2.{net}", first=net * 100_000)
    connect_all(sel, 0.0)
    targets = [sel.targets(n)[0] for n in sel.picks]
    assert len({net_group(t.rsplit(":", 1)[0]) for t in targets}) == 8


def test_peers_that_dialled_us_and_excluded_peers_are_never_picked() -> None:
    """An inbound peer cannot become one of our own picks, nor a manual or banned one."""
    excluded = {nid(2000), nid(3000)}
    sel = PeerSelection(LIMITS, random.Random(6), excluded=lambda n: n in excluded)
    ids = learn_hosts(sel, 10)
    sel.session_opened(nid(1000), 0.0)  # host 2 dialled us first
    dialled = connect_all(sel, 0.0)
    assert not {nid(1000), *excluded} & set(dialled)
    assert set(dialled) <= set(ids)


def test_stable_slots_go_to_the_best_scored_longest_serving_peers() -> None:
    """Stable slots prefer peers with a good score."""
    good = {nid(k * 1000) for k in range(5)}
    sel = PeerSelection(LIMITS, random.Random(7), score=lambda n: 10.0 if n in good else 0.0)
    learn_hosts(sel, 30)
    connect_all(sel, 0.0)
    assert {n for n, s in sel.picks.items() if s is Slot.STABLE} == good


def test_a_failing_peer_is_not_dialled_in_a_tight_loop_even_when_reannounced() -> None:
    """Dials to a dead peer back off exponentially to a minute, and announcing it again every
    10 ms brings its dials no closer than `retry_min` (less 20 % jitter) apart."""
    sel = PeerSelection(LIMITS, random.Random(8))
    learn_hosts(sel, 1)
    dials: list[float] = []
    for tick in range(60_000):  # ten minutes in 10 ms steps
        now = tick / 100
        for node_id in sel.plan(now).dial:
            dials.append(now)
            sel.dial_failed(node_id, now)
    gaps = [b - a for a, b in itertools.pairwise(dials)]
    assert all(g >= 0.39 for g in gaps)
    assert len(dials) < 20 and max(gaps) >= 45  # capped at a minute, ± 20 %

    sel = PeerSelection(LIMITS, random.Random(9))
    dials.clear()
    for tick in range(1000):  # ten seconds of re-announcements
        now = tick / 100
        learn_hosts(sel, 1, now)
        for node_id in sel.plan(now).dial:
            dials.append(now)
            sel.dial_failed(node_id, now)
    gaps = [b - a for a, b in itertools.pairwise(dials)]
    assert all(g >= 0.39 for g in gaps) and len(dials) <= 26


def test_a_peer_that_refuses_us_right_after_the_handshake_is_backed_off() -> None:
    """A full peer (it ends our session at once) is left alone for `refused_backoff`, and its
    slot goes to another peer meanwhile."""
    sel = PeerSelection(SelectionLimits(max_outbound=1, stable_slots=1), random.Random(10))
    learn_hosts(sel, 2)
    (full,) = connect_all(sel, 0.0)
    sel.session_closed(full, 0.2, by_peer=True)  # `error full` right after the handshake
    (other,) = connect_all(sel, 0.2)
    assert other != full
    sel.session_closed(other, 1.0, by_peer=True)
    for second in range(2, 24):
        assert full not in sel.plan(float(second)).dial
        assert sel.next_wakeup(float(second)) is not None


def test_a_vanished_peer_with_a_live_session_is_forgotten_only_when_it_ends() -> None:
    """mDNS forgetting a peer leaves its session alone; once that ends it is not redialled."""
    sel = PeerSelection(SelectionLimits(max_outbound=1, stable_slots=1), random.Random(11))
    learn_hosts(sel, 1)
    (peer,) = connect_all(sel, 0.0)
    sel.forget(peer)
    assert sel.knows(peer) and sel.is_picked(peer)
    sel.session_closed(peer, 100.0, by_peer=False)
    assert not sel.knows(peer) and sel.plan(200.0).dial == ()


def test_an_unreachable_peer_is_forgotten_after_forget_after() -> None:
    """A candidate that never answers leaves the table after `forget_after` seconds."""
    sel = PeerSelection(LIMITS, random.Random(12))
    learn_hosts(sel, 1)
    now = 0.0
    while now < 700 and sel.knows(nid(0)):
        for node_id in sel.plan(now).dial:
            sel.dial_failed(node_id, now)
        now += 1.0
    assert not sel.knows(nid(0)) and 600 <= now <= 602


def session(i: int, group: str, *, known: bool = True, score: float = 0.0,
            since: float = 0.0) -> InboundSession:
    return InboundSession(nid(i), group, known, score, since)


def test_inbound_sessions_are_capped_and_a_full_node_refuses() -> None:
    """Beyond 24 inbound sessions from distinct hosts a newcomer is refused (`error full`)."""
    sel = PeerSelection(LIMITS)
    current = [session(i, f"10.0.0.{i}") for i in range(24)]
    assert not sel.admit_inbound(session(99, "10.0.1.1"), current).admit
    assert sel.admit_inbound(session(99, "10.0.1.1"), current[:23]).admit


def test_strangers_leave_room_for_known_peers_who_evict_the_weakest_stranger() -> None:
    """Peers without history take at most 16 of 24 slots; a known peer arriving when all are
    taken evicts the lowest-scored, newest stranger."""
    sel = PeerSelection(LIMITS)
    strangers = [session(i, f"10.0.0.{i}", known=False, score=1.0, since=i) for i in range(16)]
    assert not sel.admit_inbound(session(99, "10.0.1.1", known=False), strangers).admit
    full = strangers + [session(100 + i, f"10.0.2.{i}") for i in range(8)]
    weakest = session(50, "10.0.3.1", known=False, score=-5.0, since=1.0)
    full[3] = weakest
    answer = sel.admit_inbound(session(99, "10.0.1.1"), full)
    assert answer.admit and answer.evict == weakest.node_id


def test_one_host_cannot_hold_the_inbound_slots_others_need() -> None:
    """When full, the host holding two more sessions than the newcomer's gives up its newest."""
    sel = PeerSelection(LIMITS)
    crowd = [session(i, "10.0.0.66", since=i) for i in range(8)]
    others = [session(100 + i, f"10.0.1.{i}") for i in range(16)]
    answer = sel.admit_inbound(session(99, "10.0.2.1"), crowd + others)
    assert answer.admit and answer.evict == nid(7)


def test_our_own_pick_dialling_us_is_always_admitted() -> None:
    """A peer we picked that dials us at the same moment fills our outbound slot: admitted."""
    sel = PeerSelection(SelectionLimits(max_inbound=0, reserved_inbound=0), random.Random(13))
    learn_hosts(sel, 1)
    (peer,) = sel.plan(0.0).dial
    assert sel.admit_inbound(session(0, "10.0.0.1"), []).admit and peer == nid(0)


@pytest.mark.parametrize("max_peers,outbound,stable,inbound,reserved", [
    (32, 8, 5, 24, 8), (1, 1, 1, 0, 0), (4, 1, 1, 3, 1), (100, 25, 16, 75, 25),
])
def test_max_peers_splits_into_outbound_and_inbound(max_peers, outbound, stable, inbound,
                                                    reserved) -> None:
    """`--max-peers N`: a quarter dialled by us (5/8 of them stable), the rest inbound."""
    limits = SelectionLimits.for_peers(max_peers)
    assert (limits.max_outbound, limits.stable_slots, limits.max_inbound,
            limits.reserved_inbound) == (outbound, stable, inbound, reserved)
    assert limits.max_outbound + limits.max_inbound == max_peers


@pytest.mark.parametrize("kwargs", [
    {"stable_slots": 9}, {"max_inbound": -1}, {"reserved_inbound": 25}, {"max_known": 0},
    {"retry_min": 0}, {"retry_min": 5, "retry_max": 1},
])
def test_inconsistent_limits_are_refused(kwargs) -> None:
    """Limits that contradict each other raise ValueError naming the field."""
    with pytest.raises(ValueError):
        SelectionLimits(**kwargs)
    with pytest.raises(ValueError, match="at least 1"):
        SelectionLimits.for_peers(0)


@pytest.mark.parametrize("address,group", [
    ("192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("::ffff:192.0.2.7", "192.0.2.7"),
    ("fe80::1%eth0", "fe80::1"),
])
def test_address_groups_are_hosts(address, group) -> None:
    """One host: an IPv4 address, an IPv6 /64, or a whole link-local address (every host on a
    link shares fe80::/64, so the /64 would lump them all together)."""
    assert address_group(address) == group


_EVENTS = st.lists(st.tuples(st.sampled_from(["learn", "open", "close", "refuse", "fail",
                                              "forget", "inbound", "tick"]),
                             st.integers(0, 39), st.floats(0.0, 400.0)), max_size=120)


@settings(max_examples=150, deadline=None)
@given(events=_EVENTS, seed=st.integers(0, 2**16))
def test_any_sequence_of_events_keeps_the_caps(events, seed) -> None:
    """Whatever happens, in whatever order: at most max_outbound picks, never an excluded or
    inbound-connected peer picked by a plan, the table within its bounds."""
    limits = SelectionLimits(max_outbound=4, stable_slots=2, max_known=12, max_known_per_group=3)
    excluded = {nid(5), nid(6)}
    sel = PeerSelection(limits, random.Random(seed), excluded=lambda n: n in excluded)
    inbound: set[bytes] = set()
    now = 0.0
    for kind, i, dt in events:
        now += dt
        node_id = nid(i)
        if kind == "learn":
            address = f"10.0.{i % 3}.{i % 7}"
            sel.learn(node_id, [address], [f"{address}:1"], now)
        elif kind == "open" and sel.is_picked(node_id):
            sel.session_opened(node_id, now)
        elif kind == "inbound":
            inbound.add(node_id)
            sel.session_opened(node_id, now)
        elif kind in ("close", "refuse"):
            inbound.discard(node_id)
            sel.session_closed(node_id, now, by_peer=kind == "refuse")
        elif kind == "fail" and sel.is_picked(node_id):
            sel.dial_failed(node_id, now)
        elif kind == "forget":
            sel.forget(node_id)
        plan = sel.plan(now)
        assert not set(plan.dial) & (excluded | inbound)
        assert len(sel.picks) <= limits.max_outbound
        assert sel.known_count <= limits.max_known
        wake = sel.next_wakeup(now)
        assert wake is None or wake > now  # the selector never spins
