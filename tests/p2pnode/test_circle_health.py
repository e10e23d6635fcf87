"""Circle health in P2PU's terms (issue 14 item 4): circles work best with 4-15 participants.
A circle's detail says so when few sign-ups are accepted close to the start, or more than 15
are; hints only: nothing is refused because of them."""

from __future__ import annotations

import json

import pytest
from builders import circle_body, ms

from p2pnode import actions
from p2pnode.cli.main import main
from p2pnode.home import Home
from p2pnode.store import queries
from protocol.identity import node_id_text

START = "2027-01-12"  # Tuesdays 18:30 Johannesburg (16:30 UTC)
ANNOUNCED = ms("2027-01-01")
LATER = ms("2027-03-15")


def _sync(source: Home, target: Home) -> None:
    report = target.store.ingest(list(source.store.iter_all_entries()), now_ms=LATER)
    assert not report.rejected, report.rejected


@pytest.fixture
def circle(home_factory):
    """Ana's circle (no capacity) and a factory of learners who joined it, accepted by Ana."""
    ana = home_factory("ana")
    actions.set_profile(ana, "Ana", at_ms=ANNOUNCED)
    circle_id = actions.announce_circle(ana, circle_body([]), at_ms=ANNOUNCED).id

    made = iter(range(100))

    def accept(count: int) -> None:
        for _ in range(count):
            i = next(made)
            learner = home_factory(f"learner{i}")
            _sync(ana, learner)
            actions.set_profile(learner, f"L{i}", at_ms=ANNOUNCED)
            join = actions.join_circle(learner, circle_id, f"L{i}", at_ms=ms("2027-01-02"))
            _sync(learner, ana)
            actions.decide_join(ana, join.id, accepted=True, at_ms=ms("2027-01-03"))

    return ana, circle_id, accept


def _hints(ana: Home, circle_id: bytes, now_ms: int) -> tuple[str, ...]:
    detail = queries.get_circle(ana.store.conn, circle_id, now_ms=now_ms)
    assert detail is not None
    return detail.health_hints(now_ms)


def test_few_sign_ups_close_to_the_start_are_pointed_out(circle) -> None:
    """One accepted sign-up two days before the first meeting is a hint; ten days before, or
    with four accepted, it is not."""
    ana, circle_id, accept = circle
    accept(1)
    (hint,) = _hints(ana, circle_id, ms("2027-01-10", "16:30"))
    assert "only 1 accepted sign-up" in hint and "4-15" in hint
    assert _hints(ana, circle_id, ms("2027-01-02")) == ()
    accept(3)
    assert _hints(ana, circle_id, ms("2027-01-10", "16:30")) == ()


def test_more_than_fifteen_is_a_hint_not_a_limit(circle) -> None:
    """Accepting a sixteenth learner works (no capacity was set), and the circle then suggests
    a second one."""
    ana, circle_id, accept = circle
    accept(16)
    detail = queries.get_circle(ana.store.conn, circle_id, now_ms=ms("2027-01-05"))
    assert detail is not None and detail.accepted == 16
    (hint,) = detail.health_hints(ms("2027-01-05"))
    assert "16 accepted" in hint and "second circle" in hint


def test_circle_show_prints_the_hints(circle, capsys) -> None:
    """The CLI shows each hint on its own line and lists them under "hints" in --json."""
    ana, circle_id, accept = circle
    accept(16)
    ana.close()
    text_id = node_id_text(circle_id)
    home = str(ana.path)
    assert main(["--home", home, "circle", "show", text_id]) == 0
    assert "hint:" in capsys.readouterr().out
    assert main(["--home", home, "circle", "show", text_id, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert any("second circle" in h for h in shown["hints"])
