"""Async client of the presence service: `async with connect(url, token=...) as client`; a backend's REST calls
with a service key: `async with ServiceClient(url, service_key) as svc`."""

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
    ChannelPage,
    ChannelSummary,
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
from presence_client.service import ServiceClient

__all__ = [
    "AuthenticationError", "Backoff", "ChannelChange", "ChannelPage", "ChannelPresence", "ChannelSummary",
    "ChannelView", "Client", "ClientClosedError", "ConnectError", "Departure", "ForcedOfflineError", "Member",
    "MemberJoined", "MemberLeft", "MemberUpdated", "PresenceClientError", "PresenceError", "QueryResult", "Resumed",
    "Resynced", "ServiceClient", "TypingChanged", "UserChange", "UserGone", "UserPresence", "WatchedUsers", "Welcome",
    "connect",
]
