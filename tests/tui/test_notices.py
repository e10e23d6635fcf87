"""Notifications that matter: a facilitator's reschedule on node B reaches the app on node A,
where A joined, while the app is open and — remembered per home — after it restarts."""

from __future__ import annotations

from tui_helpers import notifications, settle, two_nodes

from p2pnode import actions


async def reschedule(ben, circle_id: bytes) -> None:
    await ben.perform(actions.update_circle, circle_id,
                      {"meetings": ["2027-03-02", "2027-03-09"], "meeting_time": "19:00"})


async def test_a_reschedule_on_another_node_notifies_live(tmp_path, nodes, open_app,
                                                          eventually):
    """Ben moves the meetings while Ana's app is open: a notification says so at once."""
    ben, me, circle_id = await two_nodes(nodes, eventually)
    await me.perform(actions.join_circle, circle_id, "Ana")
    async with open_app(me, welcome=False) as pilot:
        await settle(pilot)
        await reschedule(ben, circle_id)

        async def told():
            await settle(pilot)
            return [n for n in notifications(pilot.app) if "rescheduled" in n]
        said = await eventually(told, timeout=10)
        assert "Python for Everybody was rescheduled: meetings now 2027-03-02 to 2027-03-09" \
            in said[0]


async def test_a_reschedule_while_the_app_was_closed_shows_on_the_next_start_once(
        tmp_path, nodes, open_app, eventually):
    """The app is closed when the reschedule arrives (the node keeps running, as `p2pnode
    run` would): the next start says so under "While you were away"; the start after, not."""
    ben, me, circle_id = await two_nodes(nodes, eventually)
    await me.perform(actions.join_circle, circle_id, "Ana")
    async with open_app(me, welcome=False) as pilot:
        await settle(pilot)
        assert not [n for n in notifications(pilot.app) if "away" in n]
    await reschedule(ben, circle_id)

    async def arrived():
        return (await me.circle(circle_id)).rescheduled
    await eventually(arrived, timeout=10)
    async with open_app(me, welcome=False) as pilot:
        await settle(pilot)
        away = [n for n in notifications(pilot.app) if n.startswith("While you were away")]
        assert len(away) == 1 and "Python for Everybody was rescheduled" in away[0]
    async with open_app(me, welcome=False) as pilot:
        await settle(pilot)
        assert not [n for n in notifications(pilot.app) if "rescheduled" in n]


async def test_a_reschedule_reaches_a_restarted_node_and_app(tmp_path, nodes, open_app,
                                                             eventually):
    """Ana's node and app are both down when Ben reschedules; on restart the entry syncs in and
    the app says so, even though it was never open when it arrived."""
    ben, me, circle_id = await two_nodes(nodes, eventually)
    await me.perform(actions.join_circle, circle_id, "Ana")
    await eventually(lambda: _joined(ben, circle_id), timeout=10)
    async with open_app(me, welcome=False) as pilot:
        await settle(pilot)
    await me.close()
    await reschedule(ben, circle_id)
    again = await nodes.start("me", peers=[ben])
    async with open_app(again, welcome=False) as pilot:
        async def told():
            await settle(pilot)
            return [n for n in notifications(pilot.app) if "rescheduled" in n]
        assert await eventually(told, timeout=15)


async def _joined(node, circle_id):
    return any(p.display_name == "Ana" for p in (await node.circle(circle_id)).participants)
