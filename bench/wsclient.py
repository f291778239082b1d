"""A tiny asyncio WebSocket client (RFC 6455, client side, text frames) for holding thousands of connections.

One `WSConnection` is one `asyncio.Protocol`: no task, no coroutine and no buffers of its own while idle,
so a connection costs a few KiB in the load generator (the popular client libraries cost about 15 KiB
and a task each). What it does:

- the opening handshake (HTTP/1.1 Upgrade, `Sec-WebSocket-Key`, checks `101` and `Sec-WebSocket-Accept`);
- sends masked text frames (`send_text`), answers pings with pongs, runs the closing handshake;
- parses unmasked server frames (7/16/64-bit lengths, fragmented messages) and hands each complete
  text message as `bytes` to one callback shared by all connections: `on_text(conn, payload)`.

No extensions (no permessage-deflate), no binary API, no TLS. Only for the benchmark harness.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
import time
from collections.abc import Callable
from typing import Any

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")

TextCallback = Callable[["WSConnection", bytes], None]
CloseCallback = Callable[["WSConnection", int | None], None]


class HandshakeError(Exception):
    pass


def _mask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if n == 0:
        return payload
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")).to_bytes(n, "little")


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame."""
    n = len(payload)
    key = os.urandom(4)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + _U16.pack(n)
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + _U64.pack(n)
    return header + key + _mask(payload, key)


class WSConnection(asyncio.Protocol):
    """One client connection. Create with `connect()`; `state` is connecting, open, closing or closed."""

    __slots__ = (
        "idx", "user", "channel", "tag", "state", "close_code", "frames_in", "bytes_in",
        "_transport", "_buf", "_fragments", "_key", "_handshake", "_closed", "_on_text", "_on_close",
        "waiter", "seen", "occupancy", "last_send", "slot", "welcome_t",
    )

    def __init__(self, key: bytes, on_text: TextCallback, on_close: CloseCallback | None) -> None:
        self.idx = -1
        self.user = ""
        self.channel = ""
        self.tag: Any = None  # free for the harness
        self.state = "connecting"
        self.close_code: int | None = None
        self.frames_in = 0
        self.bytes_in = 0
        self._transport: asyncio.Transport | None = None
        self._buf = b""
        self._fragments: list[bytes] | None = None
        self._key = key
        self._handshake: asyncio.Future[None] | None = asyncio.get_running_loop().create_future()
        self._closed: asyncio.Future[None] | None = None
        self._on_text = on_text
        self._on_close = on_close
        self.waiter: Any = None  # a future the harness may park here while it waits for one frame
        self.seen: dict[str, int] | None = None  # harness: last update seq seen per member
        self.occupancy = -1  # harness: members in the joined channel, as last told by the server
        self.last_send = 0.0
        self.slot = -1  # harness: the population slot this connection fills
        self.welcome_t: float | None = None  # harness: when the first frame arrived

    # -- asyncio.Protocol -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        buf = self._buf + data if self._buf else data
        if self.state == "connecting":
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self._buf = buf
                return
            head, buf = buf[:end], buf[end + 4 :]
            try:
                self._check_handshake(head)
            except HandshakeError as exc:
                self._buf = b""
                self.state = "closed"
                if self._handshake is not None and not self._handshake.done():
                    self._handshake.set_exception(exc)
                self._transport.close()  # type: ignore[union-attr]
                return
            self.state = "open"
            if self._handshake is not None and not self._handshake.done():
                self._handshake.set_result(None)
            self._handshake = None
        self._buf = self._parse(buf)

    def connection_lost(self, exc: Exception | None) -> None:
        previous = self.state
        self.state = "closed"
        self._buf = b""
        if self._handshake is not None and not self._handshake.done():
            self._handshake.set_exception(HandshakeError(f"connection lost during handshake: {exc!r}"))
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        if self.close_code is None:
            self.close_code = 1006
        if previous != "closed" and self._on_close is not None:
            self._on_close(self, self.close_code)

    # -- framing ----------------------------------------------------------------------------------

    def _check_handshake(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        status = lines[0].split(b" ", 2)
        if len(status) < 2 or status[1] != b"101":
            raise HandshakeError(f"upgrade refused: {lines[0].decode(errors='replace')}")
        expected = base64.b64encode(hashlib.sha1(self._key + GUID).digest())
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-accept":
                if value.strip() != expected:
                    raise HandshakeError("bad Sec-WebSocket-Accept")
                return
        raise HandshakeError("no Sec-WebSocket-Accept")

    def _parse(self, buf: bytes) -> bytes:
        pos = 0
        end = len(buf)
        while end - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            n = b1 & 0x7F
            head = 2
            if n == 126:
                if end - pos < 4:
                    break
                n = _U16.unpack_from(buf, pos + 2)[0]
                head = 4
            elif n == 127:
                if end - pos < 10:
                    break
                n = _U64.unpack_from(buf, pos + 2)[0]
                head = 10
            if b1 & 0x80:  # servers must not mask; accept it anyway
                if end - pos < head + 4 + n:
                    break
                key = buf[pos + head : pos + head + 4]
                payload = _mask(buf[pos + head + 4 : pos + head + 4 + n], key)
                pos += head + 4 + n
            else:
                if end - pos < head + n:
                    break
                payload = buf[pos + head : pos + head + n]
                pos += head + n
            self._frame(b0 & 0x80, b0 & 0x0F, payload)
            if self.state == "closed":
                return b""
        return buf[pos:] if pos < end else b""

    def _frame(self, fin: int, opcode: int, payload: bytes) -> None:
        if opcode in (OP_TEXT, OP_BINARY):
            if fin:
                self.frames_in += 1
                self._on_text(self, payload)
            else:
                self._fragments = [payload]
        elif opcode == OP_CONT:
            if self._fragments is None:
                return
            self._fragments.append(payload)
            if fin:
                message = b"".join(self._fragments)
                self._fragments = None
                self.frames_in += 1
                self._on_text(self, message)
        elif opcode == OP_PING:
            self._write(encode_frame(OP_PONG, payload))
        elif opcode == OP_CLOSE:
            self.close_code = _U16.unpack_from(payload)[0] if len(payload) >= 2 else 1005
            if self.state == "open":  # the server started the close: echo it
                self._write(encode_frame(OP_CLOSE, payload[:2]))
            self.state = "closing"
            if self._transport is not None:
                self._transport.close()

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    # -- API --------------------------------------------------------------------------------------

    def send_text(self, text: bytes | str) -> bool:
        """Queue one text frame; False when the connection is not open."""
        if self.state != "open":
            return False
        payload = text.encode() if isinstance(text, str) else text
        self._write(encode_frame(OP_TEXT, payload))
        self.last_send = time.monotonic()
        return True

    async def close(self, code: int = 1000, timeout_s: float = 5.0) -> None:
        """The closing handshake: send a close frame, wait for the server's, then the TCP close."""
        if self.state != "open":
            if self._transport is not None and self.state != "closed":
                self._transport.close()
            return
        self.state = "closing"
        self._closed = asyncio.get_running_loop().create_future()
        self._write(encode_frame(OP_CLOSE, _U16.pack(code)))
        try:
            await asyncio.wait_for(asyncio.shield(self._closed), timeout_s)
        except TimeoutError:
            self.abort()

    def abort(self) -> None:
        """Drop the TCP connection without a closing handshake."""
        if self._transport is not None:
            self._transport.abort()

    @property
    def buffered(self) -> int:
        return self._transport.get_write_buffer_size() if self._transport is not None else 0


async def connect(host: str, port: int, path: str, on_text: TextCallback, on_close: CloseCallback | None = None,
                  timeout_s: float = 10.0) -> WSConnection:
    """Open a WebSocket to ws://host:port/path (path includes the query string)."""
    loop = asyncio.get_running_loop()
    key = base64.b64encode(os.urandom(16))
    conn = WSConnection(key, on_text, on_close)
    handshake = conn._handshake
    assert handshake is not None

    async def _open() -> None:
        transport, _ = await loop.create_connection(lambda: conn, host, port)
        transport.write(
            b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + f"{host}:{port}".encode()
            + b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key
            + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        await handshake

    try:
        await asyncio.wait_for(_open(), timeout_s)
    except BaseException:
        conn.abort()
        raise
    return conn
