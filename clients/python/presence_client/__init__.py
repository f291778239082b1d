"""Async client of the presence service: `async with connect(url, token=...) as client`."""

from presence_client.backoff import Backoff
from presence_client.channel import ChannelView
from presence_client.client import Client, connect
from presence_client.errors import (
    AuthenticationError,
    ClientClosedError,
    ConnectError,
    ForcedOfflineError,
    PresenceClientError,
    PresenceError,
)
from presence_client.presence import ChannelPresence, WatchedUsers
from presence_client.records import (
    ChannelChange,
    Departure,
    Member,
    MemberJoined,
    MemberLeft,
    MemberUpdated,
    QueryResult,
    Resumed,
    Resynced,
    TypingChanged,
    UserChange,
    UserGone,
    UserPresence,
    Welcome,
)

__all__ = [
    "AuthenticationError", "Backoff", "ChannelChange", "ChannelPresence", "ChannelView", "Client",
    "ClientClosedError", "ConnectError", "Departure", "ForcedOfflineError", "Member", "MemberJoined", "MemberLeft",
    "MemberUpdated", "PresenceClientError", "PresenceError", "QueryResult", "Resumed", "Resynced", "TypingChanged",
    "UserChange", "UserGone", "UserPresence", "WatchedUsers", "Welcome", "connect",
]
