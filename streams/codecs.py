"""Faust codecs for table values, so tables hold decoded state and only the changelog sees bytes."""

from __future__ import annotations

from typing import Any

from faust.serializers import codecs

from schemas.codec import decode, encode
from schemas.state import ChannelState, EdgeLease, UserPresence


class _StateCodec(codecs.Codec):
    state_type: type

    def _dumps(self, obj: Any) -> bytes:
        return encode(obj)

    def _loads(self, s: bytes) -> Any:
        return decode(s, self.state_type)


class UserPresenceCodec(_StateCodec):
    state_type = UserPresence


class ChannelStateCodec(_StateCodec):
    state_type = ChannelState


class EdgeLeaseCodec(_StateCodec):
    state_type = EdgeLease


codecs.register("presence_user", UserPresenceCodec())
codecs.register("presence_lease", EdgeLeaseCodec())
codecs.register("presence_channel", ChannelStateCodec())
