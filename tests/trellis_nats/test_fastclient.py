"""FastHeadersClient must be indistinguishable from nats-py's Client, only cheaper.

The property tests compare both implementations on random (and junk) input; the
integration test exchanges headers between a FastHeadersClient and a stock client through a
real nats-server.
"""

from __future__ import annotations

import asyncio
from collections import UserString
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import nats
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nats.aio.client import Client
from nats.aio.msg import Msg

from trellis.nats import fastclient
from trellis.nats.fastclient import FastHeadersClient, connect, subscribe_inline
from trellis.nats.server import NatsServer, free_ports

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
WHITESPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u2028\u3000"
COMMON_KEYS = ["session-key", "proof", "iat", "request-id", "traceparent", "Nats-Msg-Id"]


@pytest.fixture
async def server_url(tmp_path: Path) -> AsyncIterator[str]:
    """A real nats-server on free loopback ports, for the tests that talk to one."""
    port, monitor = free_ports(2)
    conf = tmp_path / "nats.conf"
    conf.write_text(f'host: "127.0.0.1"\nport: {port}\nhttp: "127.0.0.1:{monitor}"\n')
    async with NatsServer(conf, client_port=port, monitor_port=monitor) as server:
        yield server.url


def test_fast_paths_are_installed() -> None:
    # the hasattr guards must not have silently fallen back to the stock methods
    assert FastHeadersClient._send_publish is not Client._send_publish
    assert FastHeadersClient._parse_header_lines is not Client._parse_header_lines
    assert FastHeadersClient._process_msg is not Client._process_msg
    assert FastHeadersClient._flusher is not Client._flusher


# --- parsing -------------------------------------------------------------------------

name_bytes = st.one_of(
    st.sampled_from([k.encode() for k in COMMON_KEYS]),
    st.text(alphabet=TOKEN_CHARS, max_size=12).map(str.encode),
    st.binary(max_size=12),
    st.text(alphabet=TOKEN_CHARS + WHITESPACE + "é:", max_size=12).map(lambda s: s.encode("utf-8")),
)
value_bytes = st.one_of(
    st.text(max_size=20).map(lambda s: s.encode("utf-8")),
    st.binary(max_size=20),  # invalid UTF-8 included
)
header_line = st.one_of(
    st.builds(
        lambda name, sep, value: name + sep + value,
        name_bytes,
        st.sampled_from([b": ", b":", b":\t", b" : ", b"::"]),
        value_bytes,
    ),
    st.binary(max_size=30),  # junk, lines without ':'
    st.just(b""),
)
header_block = st.one_of(
    st.builds(
        lambda lines, tail: b"\r\n".join(lines) + tail,
        st.lists(header_line, max_size=8),
        st.sampled_from([b"", b"\r\n", b"\r\n\r\n", b"\r", b"\n"]),
    ),
    st.binary(max_size=80),
)


@settings(max_examples=300, deadline=None)
@given(header_block)
def test_parse_matches_nats_py(raw: bytes) -> None:
    assert FastHeadersClient._parse_header_lines(raw) == Client._parse_header_lines(raw)


def test_parse_examples() -> None:
    raw = (
        b"a: 1\r\n\r\nno colon\r\nb:2\r\n c \t:\t 3 \r\nd e: 4\r\n\x1cf: 5\r\n"
        b"\xc3\xa9: 6\r\ng: \xff\xfe\r\na: again\r\n:empty name\r\n"
    )
    expected = {"a": "again", "b": "2", "c": "3", "g": "\ufffd\ufffd", "": "empty name"}
    assert Client._parse_header_lines(raw) == expected
    assert FastHeadersClient._parse_header_lines(raw) == expected
    # through the instance, as nats-py's _process_headers calls it
    assert FastHeadersClient()._parse_header_lines(raw) == expected


# --- publishing ----------------------------------------------------------------------


def _drive(coro: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine that must complete without suspending (no server, no I/O)."""
    try:
        coro.send(None)
    except StopIteration:
        return
    coro.close()
    raise AssertionError("_send_publish suspended")


def _publish(client: Client, headers: Any, subject: str = "svc.rpc") -> Any:
    sent: list[bytes] = []

    async def record(cmd: bytes, priority: bool = False) -> None:
        sent.append(cmd)

    client._send_command = record  # type: ignore[method-assign]
    assert client._flush_queue is None  # unconnected: the flush branch is not taken
    payload = b'{"x":1}'
    try:
        _drive(client._send_publish(subject, "_INBOX.r", payload, len(payload), headers))
    except Exception as exc:
        return (type(exc), str(exc))
    return (sent, client.stats["out_msgs"], client.stats["out_bytes"])


def _both(headers: Any, subject: str = "svc.rpc") -> tuple[Any, Any]:
    return _publish(Client(), headers, subject), _publish(FastHeadersClient(), headers, subject)


header_keys = st.one_of(
    st.sampled_from(COMMON_KEYS),
    st.text(alphabet=TOKEN_CHARS, max_size=10),
    st.builds(
        lambda pre, key, post: pre + key + post,
        st.text(alphabet=WHITESPACE, max_size=2),
        st.sampled_from(COMMON_KEYS),
        st.text(alphabet=WHITESPACE, max_size=2),
    ),
    st.text(alphabet=WHITESPACE, max_size=3),  # empty / whitespace-only: skipped
    st.text(max_size=10),  # spaces, CR, LF, unicode: mostly invalid
)
header_values = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=TOKEN_CHARS + WHITESPACE + "é€😀", max_size=30),
    st.text(alphabet="ab \r\n", max_size=10),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(header_keys, header_values, max_size=6))
def test_publish_matches_nats_py(headers: dict[str, str]) -> None:
    stock, fast = _both(headers)
    assert fast == stock


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {},
        {"session-key": "k" * 43, "proof": "p" * 86, "iat": "1712345678", "request-id": "01H"},
        {"a": "line1\r\nline2\rx\ny", " b ": "  padded  ", "   ": "skipped", "": "skipped"},
        {"ok": "1", "bad key": "2"},
        {"bad\r\nkey": "x"},
        {"ok": "1", "é": "2"},
        {"a": "lone \ud800 surrogate", "bad key": "x"},
        {"a": "\udfff", "b": "1"},
        {"a": UserString(" user string ")},
        {"a": 1},
        {1: "a"},
        {"a": b"bytes"},
    ],
)
def test_publish_examples(headers: Any) -> None:
    stock, fast = _both(headers)
    assert fast == stock


def test_publish_empty_subject_checked_first() -> None:
    stock, fast = _both({"bad key": "x"}, subject="")
    assert fast == stock
    assert fast[0] is nats.errors.BadSubjectError


def test_key_cache_is_bounded() -> None:
    for i in range(fastclient._CACHE_MAX * 2):
        stock, fast = _both({f"k{i}": "v", f"bad {i}": "v"} if i % 7 == 0 else {f"k{i}": "v"})
        assert fast == stock
        raw = f"n{i}: v\r\n".encode()
        assert FastHeadersClient._parse_header_lines(raw) == Client._parse_header_lines(raw)
    assert len(fastclient._KEY_CACHE) <= fastclient._CACHE_MAX
    assert len(fastclient._NAME_CACHE) <= fastclient._CACHE_MAX


# --- against a real nats-server ------------------------------------------------------


async def test_headers_roundtrip_through_nats_server(server_url: str) -> None:
    headers = {
        "session-key": "A" * 43,
        "proof": "B-_" * 28 + "CD",
        "iat": "1712345678",
        "request-id": "01HV5Z3K8Q9X7Y6W5V4T3S2R1P",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "multi-line": " first\r\nsecond\rthird\nfourth ",
        "unicode": "héllo €",
    }
    expected = dict(headers, **{"multi-line": "first  second third fourth"})

    fast = await connect(server_url)
    plain = await nats.connect(server_url)
    try:
        assert isinstance(fast, FastHeadersClient)
        received: dict[str, list[dict[str, str] | None]] = {"fast": [], "plain": []}
        done = asyncio.Event()

        def collector(name: str) -> Any:
            async def cb(msg: Msg) -> None:
                received[name].append(msg.headers)
                if all(len(v) == 2 for v in received.values()):
                    done.set()

            return cb

        await fast.subscribe("hdr.test", cb=collector("fast"))
        await plain.subscribe("hdr.test", cb=collector("plain"))
        await fast.flush()
        await plain.flush()

        await fast.publish("hdr.test", b"from fast", headers=headers)
        await plain.publish("hdr.test", b"from plain", headers=headers)
        await fast.flush()
        await plain.flush()
        await asyncio.wait_for(done.wait(), timeout=5)

        for got in received.values():
            assert got == [expected, expected]

        # request/reply: fast requester, plain responder echoing the headers back
        async def echo(msg: Msg) -> None:
            await plain.publish(msg.reply, b"", headers=msg.headers)

        await plain.subscribe("hdr.echo", cb=echo)
        await plain.flush()
        reply = await fast.request("hdr.echo", b"", timeout=5, headers=headers)
        assert reply.headers == expected
    finally:
        await fast.close()
        await plain.close()


async def test_inline_subscriptions_deliver_from_the_read_loop(server_url: str) -> None:
    fast = await connect(server_url)
    plain = await nats.connect(server_url)
    try:
        got: list[tuple[str, bytes, dict[str, str] | None]] = []
        arrived = asyncio.Event()

        def on_msg(msg: Msg) -> None:
            if msg.data == b"boom":
                raise RuntimeError("a buggy callback")
            got.append((msg.subject, msg.data, msg.headers))
            if len(got) == 3:
                arrived.set()

        sub = await subscribe_inline(fast, "inline.*", on_msg)
        assert fast._inline[sub._id] is on_msg  # registered for inline dispatch
        await fast.flush()
        await plain.publish("inline.a", b"one", headers={"k": "v"})
        await plain.publish("inline.b", b"boom")  # logged; delivery goes on
        await plain.publish("inline.c", b"two")
        await plain.publish("inline.d", b"three")
        await plain.flush()
        await asyncio.wait_for(arrived.wait(), timeout=5)
        assert got == [
            ("inline.a", b"one", {"k": "v"}),
            ("inline.c", b"two", None),
            ("inline.d", b"three", None),
        ]
        assert sub.pending_msgs == 0  # nothing went through nats-py's queue

        await sub.unsubscribe()
        assert sub._id not in fast._inline

        # on a plain nats-py client it is an ordinary subscription with the same callback
        plain_got: list[bytes] = []
        done = asyncio.Event()

        def on_plain(msg: Msg) -> None:
            plain_got.append(msg.data)
            done.set()

        await subscribe_inline(plain, "inline.plain", on_plain)
        await plain.flush()
        await fast.publish("inline.plain", b"hello")
        await fast.flush()
        await asyncio.wait_for(done.wait(), timeout=5)
        assert plain_got == [b"hello"]
    finally:
        await fast.close()
        await plain.close()


async def test_closing_forgets_inline_callbacks(server_url: str) -> None:
    fast = await connect(server_url)
    await subscribe_inline(fast, "inline.close", lambda msg: None)
    assert fast._inline
    await fast.close()
    assert not fast._inline  # nothing keeps the callback (and what it holds) alive


async def test_a_busy_connection_coalesces_its_writes_and_loses_nothing(server_url: str) -> None:
    listener = await nats.connect(server_url)
    received: list[bytes] = []
    all_in = asyncio.Event()
    publishers, each = 20, 50

    async def on_msg(msg: Msg) -> None:
        received.append(msg.data)
        if len(received) == 2 * publishers * each:
            all_in.set()

    await listener.subscribe("burst.>", cb=on_msg)
    await listener.flush()
    writes: dict[str, int] = {}
    try:
        for name, nc in (
            ("plain", await nats.connect(server_url)),
            ("fast", await connect(server_url)),
        ):
            assert nc._transport is not None
            transport = nc._transport
            real_writelines = transport.writelines
            writes[name] = 0

            def counting(data: Any, name: str = name, real: Any = real_writelines) -> None:
                writes[name] += 1
                real(data)

            transport.writelines = counting  # type: ignore[method-assign]

            async def publisher(p: int, nc: Any = nc, name: str = name) -> None:
                for i in range(each):
                    await nc.publish(f"burst.{name}.{p}", f"{name}:{p}:{i}".encode())
                    await asyncio.sleep(0)  # every publisher publishes once per pass

            await asyncio.gather(*(publisher(p) for p in range(publishers)))
            await nc.flush()
            await nc.close()
        await asyncio.wait_for(all_in.wait(), timeout=10)
    finally:
        await listener.close()
    for name in ("plain", "fast"):
        for p in range(publishers):
            mine = [m for m in received if m.startswith(f"{name}:{p}:".encode())]
            assert mine == [f"{name}:{p}:{i}".encode() for i in range(each)]  # all, in order
    # the same publishes went out in fewer socket writes (each one wakes nats-server)
    assert writes["fast"] < writes["plain"]


async def test_flush_writes_pending_publishes_before_its_ping(server_url: str) -> None:
    nc = await connect(server_url)
    try:
        assert nc._transport is not None
        transport = nc._transport
        wire: list[bytes] = []
        real_write, real_writelines = transport.write, transport.writelines

        def write(data: bytes) -> None:
            wire.append(bytes(data))
            real_write(data)

        def writelines(data: Any) -> None:
            wire.extend(bytes(d) for d in data)
            real_writelines(data)

        transport.write = write  # type: ignore[method-assign]
        transport.writelines = writelines  # type: ignore[method-assign]
        for delay_passes in (0, 1, 2):  # flush at once, or after the flusher was woken
            wire.clear()
            await nc.publish("order.a", b"1")
            await nc.publish("order.b", b"2")
            for _ in range(delay_passes):
                await asyncio.sleep(0)
            await nc.flush()
            commands = [c.split(b" ", 1)[0].strip() for c in wire]
            assert b"PING" in commands and commands.count(b"PUB") == 2
            # the PONG that ends flush() answers a PING sent after both publishes
            assert commands.index(b"PING") > max(
                i for i, c in enumerate(commands) if c == b"PUB"
            ), commands
    finally:
        await nc.close()
