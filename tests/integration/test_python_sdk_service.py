"""The Python SDK's service side against the real stack: a backend's ServiceClient sets a connected user's status
(its own channel view sees it), reads the channel and the channel list page by page, reads and queries users,
and forces the user offline (its client ends with ForcedOfflineError); and a service key opened as a socket with
`connect` observes the channel, sees the user come and go, and is refused what would act as a user."""

from __future__ import annotations

import asyncio
import os

import pytest
from presence_client import (
    AuthenticationError,
    ChannelChange,
    ForcedOfflineError,
    MemberJoined,
    MemberLeft,
    PresenceError,
    ServiceClient,
    connect,
)
from presence_client import service as service_module

from tests.integration.stack import Stack, eventually
from tests.integration.test_python_sdk import QUICK, sdk, user


async def test_a_backend_reads_and_acts_on_a_connected_user(stack: Stack, channel: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service_module, "PAGE_LIMIT", 1)  # every member and channel on a page of its own
    alice_id, bob_id, stranger = user("alice"), user("bob"), user("stranger")
    key = stack.service_key("backend")
    async with connect(stack.base_url, token=key, backoff=QUICK) as observer, \
            ServiceClient(stack.base_url, key) as svc:
        assert (observer.welcome is not None and observer.welcome.service == "backend"
                and observer.welcome.user_id == "" and observer.token_expires_at is None)
        watched = await observer.subscribe(channel)
        seen: list[ChannelChange] = []
        watched.on_change(seen.append)

        async with sdk(stack, alice_id, device="web", metadata={"team": "a"}) as alice, sdk(stack, bob_id) as bob:
            mine = await alice.join(channel)
            await bob.join(channel)
            await bob.join(f"{channel}-b")
            await eventually(lambda: {alice_id, bob_id} <= watched.members.keys())
            assert alice_id in {c.member.user_id for c in seen if isinstance(c, MemberJoined)}

            event_id = await svc.set_presence(alice_id, status="busy", text="On a call", emoji="📞", wait=True)
            assert len(event_id) == 32
            await mine.wait_until(lambda view: view.members[alice_id].status == "busy")
            assert mine.members[alice_id].status_text == "On a call"
            await eventually(lambda: watched.members[alice_id].status == "busy")

            read = await svc.channel(channel)
            assert set(read.members) == {alice_id, bob_id} and read.occupancy == 2 and read.next_cursor is None
            assert read.members[alice_id].status_emoji == "📞" and read.members[alice_id].metadata == {"team": "a"}
            assert set((await svc.channel(channel, status="online")).members) == {bob_id}
            assert (await svc.channel(channel, include_metadata=False)).members[alice_id].metadata == {}
            listed = await svc.channels()
            assert listed[channel].occupancy == 2 and listed[f"{channel}-b"].occupancy == 1

            assert (await svc.user(alice_id)).channels == (channel,)
            found = await svc.query([alice_id, stranger, bob_id])
            assert set(found.users) == {alice_id, bob_id} and found.not_found == (stranger,)
            assert found.users[alice_id].status == "busy" and found.users[alice_id].devices == ("web",)
            with pytest.raises(PresenceError) as raised:
                await svc.user(stranger)
            assert raised.value.code == "user.not_found"

            await svc.force_offline(alice_id, reason="account suspended")
            with pytest.raises(ForcedOfflineError):
                await asyncio.wait_for(alice.wait_closed(), 10)
            await eventually(lambda: alice_id not in watched.members)
            assert any(isinstance(c, MemberLeft) and c.departure.user_id == alice_id for c in seen)
            assert await eventually(lambda: _offline(svc, alice_id))
            assert bob.connected


async def _offline(svc: ServiceClient, user_id: str) -> bool:
    return (await svc.user(user_id)).status == "offline"


async def test_a_service_socket_observes_only(stack: Stack, channel: str) -> None:
    async with connect(stack.base_url, token=stack.service_key("backend"), backoff=QUICK) as observer:
        with pytest.raises(PresenceError) as joining:
            await observer.join(channel)
        with pytest.raises(PresenceError) as updating:
            await observer.set_status("busy")
        assert joining.value.code == updating.value.code == "auth.service_observer"
        assert (await observer.subscribe(channel)).members == {} and observer.connected  # the socket stays open


async def test_a_wrong_service_key_is_refused(stack: Stack) -> None:
    async with ServiceClient(stack.base_url, f"psk.backend.{os.urandom(12).hex()}") as svc:
        with pytest.raises(AuthenticationError) as raised:
            await svc.channels()
    assert raised.value.code == "auth.invalid_token"
