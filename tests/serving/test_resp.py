"""`components/serve/lookup/resp.py` (the event-loop Redis client) against a real redis-server.

redis-py writes the data and is the reference for every read. Each scenario runs with
`asyncio.run` (no pytest-asyncio here) on the stock loop and on uvloop, which is what
uvicorn serves with. Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvloop  # what uvicorn serves with; pinned in docker/runtime/requirements.lock
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from components.serve.lookup.resp import (
    AsyncRedis,
    RespError,
    RespParser,
    RespUnavailable,
    encode_command,
)
from tests.helpers.postgres import free_port
from tests.helpers.require import unavailable
from tests.serving.redis_store import RedisServer, redis_server

pytestmark = pytest.mark.serving

T = TypeVar("T")
Runner = Callable[[Coroutine[Any, Any, T]], T]

# Binary keys, fields and values: CRLF inside, invalid UTF-8, empty, and values that
# look like RESP themselves (a parser that trusts CRLF instead of lengths breaks here).
KEY = b"\x00\xffentity\r\nkey\x80"
VALUES = {
    b"plain": b"\x08\x01" + b"v" * 12,
    b"crlf\r\nfield": b"\x00\x01\r\n\xfe\xff",
    b"\xc3\x28": b"",
    b"only-crlf": b"\r\n",
    b"null-lookalike": b"$-1",
    b"array-lookalike": b"*2\r\n$1\r\na\r\n$-1\r\n",
    b"big": bytes(range(256)) * 20,  # 5120 bytes: past the parser's small-length table
}
FIELDS = [*VALUES, b"missing", b"\r\n"]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Iterator[Runner[Any]]:
    """Runs a coroutine to completion on a fresh loop of the parametrized kind."""
    if request.param == "asyncio":
        yield asyncio.run
        return

    def run_uv(coro: Coroutine[Any, Any, Any]) -> Any:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)

    yield run_uv


@pytest.fixture()
def ref(redis: RedisServer) -> Iterator[Redis]:
    """redis-py on the module's server, emptied first."""
    r = Redis(host=redis.host, port=redis.port)
    r.flushall()
    yield r
    r.close()


def client_for(server: RedisServer, **kwargs: Any) -> AsyncRedis:
    return AsyncRedis(server.host, server.port, **kwargs)


async def closing(client: AsyncRedis, body: Awaitable[T]) -> T:
    """`body`, then close the client on this loop (no socket outlives the test's loop)."""
    try:
        return await body
    finally:
        client.close()


def clients_connected(r: Redis) -> int:
    return len(r.client_list())


# 1 ---------------------------------------------------------------------------------


def test_hmget_equals_redis_py(redis: RedisServer, ref: Redis, run: Runner[Any]) -> None:
    ref.hset(KEY, mapping=VALUES)
    ref.hset("text-key", mapping={"a": "1", "b": "é"})
    expected = ref.hmget(KEY, FIELDS)
    assert expected[-2:] == [None, None] and expected[2] == b""  # the reference itself
    c = client_for(redis)

    async def scenario() -> None:
        assert await c.hmget(KEY, FIELDS) == expected
        assert await c.hmget(b"no such key", FIELDS) == [None] * len(FIELDS)
        assert await c.hmget(KEY, [b"missing"]) == [None]
        # No nulls, no look-alikes, short values: the parser's split fast path, which
        # must notice the values holding CRLF and fall back to reading by length.
        for present in ([b"plain", b"\xc3\x28"], [b"plain", b"crlf\r\nfield", b"only-crlf"]):
            assert await c.hmget(KEY, present) == [VALUES[f] for f in present]
        for field in FIELDS:
            assert await c.hmget(KEY, [field]) == ref.hmget(KEY, [field])
        # str / int arguments are encoded as redis-py encodes them
        text_key: Any = "text-key"
        mixed: list[Any] = ["a", "b", 7]
        assert await c.hmget(text_key, mixed) == ref.hmget(text_key, mixed)

    run(closing(c, scenario()))
    assert c.connects == 1


# 2 ---------------------------------------------------------------------------------


def test_hmget_many_equals_a_loop_of_hmget(
    redis: RedisServer, ref: Redis, run: Runner[Any]
) -> None:
    many_fields = [b"f%03d\r\n" % i for i in range(500)]
    ref.hset(b"wide", mapping={f: b"value-%d" % i for i, f in enumerate(many_fields)})
    ref.hset(b"huge", mapping={b"mib": random.Random(1).randbytes(1 << 20), b"small": b"x"})
    ref.hset(KEY, mapping=VALUES)
    for i in range(20):
        ref.hset(b"entity:%d" % i, mapping={f: b"%d:%s" % (i, f) for f in FIELDS[:3]})
    keys = [b"entity:%d" % i for i in range(20)] + [b"missing", KEY]
    c = client_for(redis)

    async def scenario() -> None:
        assert await c.hmget_many(keys, FIELDS) == [ref.hmget(k, FIELDS) for k in keys]
        assert await c.hmget_many([], FIELDS) == []
        # 500 fields, and a 1 MiB value arriving over many chunks, in one pipeline
        mixed = [many_fields[0], b"mib", b"small"]
        wide, huge, again = await c.hmget_many([b"wide", b"huge", b"wide"], mixed)
        assert huge == ref.hmget(b"huge", mixed)
        assert huge[1] is not None and len(huge[1]) == 1 << 20
        assert wide == again == [b"value-0", None, None]
        assert await c.hmget(b"wide", many_fields) == ref.hmget(b"wide", many_fields)
        assert await c.hmget(b"huge", [b"mib"]) == ref.hmget(b"huge", [b"mib"])

    run(closing(c, scenario()))
    assert c.connects == 1


# 3 ---------------------------------------------------------------------------------


def test_concurrent_calls_share_one_connection(
    redis: RedisServer, ref: Redis, run: Runner[Any]
) -> None:
    fields = [b"a", b"b", b"missing"]
    for i in range(200):
        ref.hset(b"user:%d" % i, mapping={b"a": b"%d" % i, b"b": b"b%d\r\n" % (i * 7)})
    expected = {i: ref.hmget(b"user:%d" % i, fields) for i in range(200)}
    before = clients_connected(ref)
    c = client_for(redis)

    async def one(i: int) -> tuple[int, Any]:
        if i % 10 == 0:  # some pipelined batches interleaved with the single reads
            return i, await c.hmget_many([b"user:%d" % i, b"user:%d" % (199 - i)], fields)
        return i, await c.hmget(b"user:%d" % i, fields)

    async def scenario() -> tuple[list[tuple[int, Any]], int]:
        # All 200 start before any connection exists: they must share the one connect.
        answers = await asyncio.gather(*(one(i) for i in range(200)))
        return answers, await asyncio.to_thread(clients_connected, ref)

    answers, during = run(closing(c, scenario()))
    for i, answer in answers:
        if i % 10 == 0:
            assert answer == [expected[i], expected[199 - i]], i
        else:
            assert answer == expected[i], i
    assert c.connects == 1
    assert during - before == 1  # the server saw exactly one more connection


def test_cancelled_callers_keep_replies_in_step(
    redis: RedisServer, ref: Redis, run: Runner[Any]
) -> None:
    """A request cancelled mid-read (its client went away, a deadline) must not shift
    the reply order for the calls after it."""
    for i in range(50):
        ref.hset(b"n:%d" % i, b"f", b"%d" % i)
    c = client_for(redis)

    async def scenario() -> None:
        await c.ping()  # connected, so the calls below are written at once
        doomed = [asyncio.ensure_future(c.hmget(b"n:%d" % i, [b"f"])) for i in range(10)]
        batch = asyncio.ensure_future(c.hmget_many([b"n:1", b"n:2"], [b"f"]))
        await asyncio.sleep(0)  # they are written, their replies not yet read
        for task in [*doomed, batch]:
            task.cancel()
        answers = await asyncio.gather(*(c.hmget(b"n:%d" % i, [b"f"]) for i in range(50)))
        assert answers == [[b"%d" % i] for i in range(50)]
        assert all(task.cancelled() for task in [*doomed, batch])

    run(closing(c, scenario()))
    assert c.connects == 1


# 4 ---------------------------------------------------------------------------------

# Every reply type: simple, error, integer, bulk (empty, null, holding CRLF), arrays
# (empty, null, nested, mixed, of bulk strings with nulls).
STREAM = (
    b"+OK\r\n"
    b"-ERR unknown command 'FOO'\r\n"
    b":0\r\n:-42\r\n:1000000000000\r\n"
    b"$0\r\n\r\n$-1\r\n$6\r\nab\r\ncd\r\n"
    b"*0\r\n*-1\r\n"
    b"*3\r\n$1\r\na\r\n$-1\r\n$2\r\n\r\n\r\n"
    b"*2\r\n*2\r\n:1\r\n+x\r\n*1\r\n*-1\r\n"
    b"*4\r\n:7\r\n$3\r\nfoo\r\n-WRONGTYPE inner\r\n*0\r\n"
    b"*2\r\n$3\r\n$-1\r\n$4\r\n*1\r\n\r\n"
    b"$3\r\n\x00\xff\r\r\n"
)
PARSED: list[Any] = [
    b"OK",
    RespError("ERR unknown command 'FOO'"),
    0,
    -42,
    1000000000000,
    b"",
    None,
    b"ab\r\ncd",
    [],
    None,
    [b"a", None, b"\r\n"],
    [[1, b"x"], [None]],
    [7, b"foo", RespError("WRONGTYPE inner"), []],
    [b"$-1", b"*1\r\n"],
    b"\x00\xff\r",
]


def comparable(value: Any) -> Any:
    """RespError compares by identity; compare its type and text instead."""
    if isinstance(value, RespError):
        return ("error", str(value))
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


def feed_in_chunks(stream: bytes, sizes: Iterator[int]) -> list[Any]:
    parser, out, pos = RespParser(), [], 0
    while pos < len(stream):
        step = next(sizes)
        out.extend(parser.feed(stream[pos : pos + step]))
        pos += step
    return out


def random_sizes(seed: int, top: int) -> Iterator[int]:
    rng = random.Random(seed)
    while True:
        yield rng.randint(1, top)


def assert_chunking_invariant(stream: bytes, expected: list[Any]) -> None:
    want = comparable(expected)
    assert comparable(RespParser().feed(stream)) == want
    assert comparable(feed_in_chunks(stream, iter(lambda: 1, 0))) == want  # byte by byte
    for seed in range(30):
        assert comparable(feed_in_chunks(stream, random_sizes(seed, 40))) == want, seed


def test_parser_any_chunking_same_replies() -> None:
    assert_chunking_invariant(STREAM, PARSED)
    parser = RespParser()  # a reply completed later, then more replies in the same chunk
    assert parser.feed(b"*2\r\n$3\r\nab") == []
    assert parser.feed(b"c\r\n$-1\r\n:5\r\n+O") == [[b"abc", None], 5]
    assert parser.feed(b"K\r\n") == [b"OK"]
    with pytest.raises(ValueError, match="unknown RESP type"):
        RespParser().feed(b"?what\r\n")
    for out_of_step in (b"$3\r\nabcd\r\n", b"*2\r\n$1\r\na\r\n$1\r\nbc\r\n"):
        with pytest.raises(ValueError, match="not followed by CRLF"):
            RespParser().feed(out_of_step)


def test_parser_on_a_recorded_server_stream(redis: RedisServer, ref: Redis) -> None:
    """The raw bytes redis-server sends for a pipeline, replayed in any chunking."""
    ref.hset(KEY, mapping=VALUES)
    ref.set(b"string", b"s\r\n")
    ref.rpush(b"list", b"x", b"", b"\r\n")
    commands: list[tuple[Any, ...]] = [
        (b"HMGET", KEY, *FIELDS),
        (b"HMGET", b"nothing", b"a", b"b"),
        (b"HMGET", b"string", b"a"),  # WRONGTYPE
        (b"GET", b"string"),
        (b"GET", b"nothing"),
        (b"INCR", b"counter"),
        (b"LRANGE", b"list", 0, -1),
        (b"SCAN", 0, b"COUNT", 1000),  # nested: [cursor, [keys...]]
        (b"HGETALL", KEY),
        (b"PING",),
    ]
    with socket.create_connection((redis.host, redis.port), timeout=5) as s:
        s.sendall(b"".join(encode_command(*cmd) for cmd in commands))
        stream = b""
        while not stream.endswith(b"+PONG\r\n"):
            chunk = s.recv(65536)
            assert chunk, stream[-200:]
            stream += chunk
    replies = RespParser().feed(stream)
    assert len(replies) == len(commands)
    assert replies[0] == ref.hmget(KEY, FIELDS)
    assert replies[1] == [None, None]
    assert isinstance(replies[2], RespError) and str(replies[2]).startswith("WRONGTYPE")
    assert replies[3:6] == [b"s\r\n", None, 1]
    assert replies[6] == [b"x", b"", b"\r\n"]
    assert replies[7][0] == b"0" and sorted(replies[7][1]) == sorted(ref.keys())
    assert dict(zip(replies[8][::2], replies[8][1::2], strict=True)) == VALUES
    assert replies[9] == b"PONG"
    assert_chunking_invariant(stream, replies)


# 5 ---------------------------------------------------------------------------------


def test_error_reply_fails_only_its_call(redis: RedisServer, ref: Redis, run: Runner[Any]) -> None:
    ref.set(b"a-string", b"x")
    ref.hset(KEY, mapping=VALUES)
    c = client_for(redis)

    async def scenario() -> None:
        with pytest.raises(RespError, match="WRONGTYPE"):
            await c.hmget(b"a-string", [b"f"])
        assert await c.hmget(KEY, [b"plain"]) == [VALUES[b"plain"]]
        # Concurrent neighbours of the failing call are unaffected.
        results = await asyncio.gather(
            c.hmget(KEY, [b"plain"]),
            c.hmget(b"a-string", [b"f"]),
            c.hmget(KEY, [b"\xc3\x28"]),
            return_exceptions=True,
        )
        assert results[0] == [VALUES[b"plain"]] and results[2] == [b""]
        assert isinstance(results[1], RespError)
        # In a pipeline: the batch raises, the next call still works.
        with pytest.raises(RespError, match="WRONGTYPE"):
            await c.hmget_many([KEY, b"a-string", KEY], [b"plain"])
        assert await c.hmget_many([KEY, KEY], [b"plain"]) == [[VALUES[b"plain"]]] * 2
        with pytest.raises(RespError, match="wrong number of arguments"):
            await c.hmget(KEY, [])
        await c.ping()

    run(closing(c, scenario()))
    assert c.connects == 1  # the error replies never cost the connection


# 6 ---------------------------------------------------------------------------------


def test_server_down_then_back(run: Runner[Any]) -> None:
    with redis_server() as server:
        Redis(host=server.host, port=server.port).hset(b"k", mapping={b"f": b"v"})
        c = client_for(server, timeout_s=1.0)
        bound = c.timeout_s + 1.0  # prompt: well within the timeout, never a hang

        async def unavailable(call: Awaitable[Any]) -> str:
            with pytest.raises(RespUnavailable) as info:
                async with asyncio.timeout(bound):  # a hang fails as TimeoutError
                    await call
            return str(info.value)  # says what happened, for the 503's log line

        async def scenario() -> None:
            assert await c.hmget(b"k", [b"f"]) == [b"v"]
            server.stop()  # blocking the loop on purpose: it learns of it on the next call
            lost = await unavailable(c.hmget(b"k", [b"f"]))
            assert "closed" in lost or "lost" in lost  # noticed, not a wait for the timeout
            assert "cannot connect" in await unavailable(c.hmget(b"k", [b"f"]))  # refused
            assert "cannot connect" in await unavailable(c.hmget_many([b"k"], [b"f"]))
            await asyncio.to_thread(server.start)
            assert await c.hmget(b"k", [b"f"]) == [b"v"]  # same client, no restart
            assert await c.hmget_many([b"k", b"x"], [b"f"]) == [[b"v"], [None]]

        run(closing(c, scenario()))
        assert c.connects == 2


# 7 ---------------------------------------------------------------------------------


@asynccontextmanager
async def silent_server() -> AsyncIterator[tuple[int, list[asyncio.StreamWriter]]]:
    """Accepts connections and never answers (a hung Redis, a black-holed proxy);
    yields its port and the connections it accepted."""
    accepted: list[asyncio.StreamWriter] = []
    handlers: list[asyncio.Task[Any]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        await reader.read()  # until the client drops the connection
        writer.close()

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], accepted
    finally:
        server.close()
        for writer in accepted:
            writer.close()
        if handlers:  # let them end before the loop does (a cancelled one logs an error)
            await asyncio.wait(handlers, timeout=5)
        await server.wait_closed()


def test_no_reply_within_timeout_fails_every_pending_call(run: Runner[Any]) -> None:
    timeout = 0.4

    async def scenario() -> None:
        async with silent_server() as (port, accepted):
            c = AsyncRedis("127.0.0.1", port, timeout_s=timeout)
            start = time.monotonic()
            async with asyncio.timeout(timeout + 1.0):  # a hang fails as TimeoutError
                results = await asyncio.gather(
                    *(c.hmget(b"k%d" % i, [b"f"]) for i in range(5)),
                    c.hmget_many([b"a", b"b"], [b"f"]),
                    return_exceptions=True,
                )
            elapsed = time.monotonic() - start
            assert all(isinstance(r, RespUnavailable) for r in results), results
            assert "no reply" in str(results[0])
            assert timeout * 0.9 <= elapsed < timeout + 1.0, elapsed
            for _ in range(100):  # the client dropped the connection: the server sees EOF
                if accepted[0].is_closing():
                    break
                await asyncio.sleep(0.02)
            assert [w.is_closing() for w in accepted] == [True]
            # A call sent later than the one that timed out fails with it (the reply
            # order is lost once one reply is missing): well before its own deadline.
            first = asyncio.ensure_future(c.hmget(b"first", [b"f"]))
            await asyncio.sleep(timeout * 0.7)  # so "second" is due to fail 0.3 x timeout on
            with pytest.raises(RespUnavailable):
                async with asyncio.timeout(timeout * 0.9):
                    await c.hmget(b"second", [b"f"])
            with pytest.raises(RespUnavailable):
                await first
            assert c.connects == 2 and len(accepted) == 2  # the next call reconnected
            c.close()

    run(scenario())


def test_connection_reset_fails_every_pending_call(run: Runner[Any]) -> None:
    """A reset (RST, no EOF) fails the pending calls at once, not at the timeout."""

    async def scenario() -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1)  # a command arrived; reset instead of answering
            linger = struct.pack("ii", 1, 0)  # on, 0 s: close() sends RST
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            writer.transport.abort()

        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        c = AsyncRedis("127.0.0.1", server.sockets[0].getsockname()[1], timeout_s=10.0)
        try:
            async with asyncio.timeout(2.0):  # far below the timeout: a hang fails here
                results = await asyncio.gather(
                    *(c.hmget(b"k", [b"f"]) for _ in range(5)), return_exceptions=True
                )
            assert all(isinstance(r, RespUnavailable) for r in results), results
            assert "lost" in str(results[0]), results[0]
        finally:
            c.close()
            server.close()
            await server.wait_closed()

    run(scenario())


def test_garbage_on_the_wire_drops_the_connection() -> None:
    """A reply the parser cannot read (not Redis, or out of step) fails the pending calls
    as RespUnavailable and drops the connection rather than guessing."""

    async def scenario() -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1)
            writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            await reader.read()
            writer.close()

        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        c = AsyncRedis("127.0.0.1", server.sockets[0].getsockname()[1], timeout_s=10.0)
        try:
            async with asyncio.timeout(2.0):
                results = await asyncio.gather(
                    *(c.hmget(b"k", [b"f"]) for _ in range(3)), return_exceptions=True
                )
            assert all(isinstance(r, RespUnavailable) for r in results), results
            assert "protocol error" in str(results[0])
        finally:
            c.close()
            server.close()
            await server.wait_closed()

    asyncio.run(scenario())


def test_close_fails_pending_calls_and_a_later_call_reconnects(
    redis: RedisServer, ref: Redis
) -> None:
    ref.hset(b"k", mapping={b"f": b"v"})

    async def scenario() -> None:
        async with silent_server() as (port, _):
            hung = AsyncRedis("127.0.0.1", port, timeout_s=5.0)
            pending = asyncio.ensure_future(hung.hmget(b"k", [b"f"]))
            await asyncio.sleep(0.05)
            hung.close()
            with pytest.raises(RespUnavailable, match="closed"):
                async with asyncio.timeout(1.0):
                    await pending

        c = client_for(redis)
        assert await c.hmget(b"k", [b"f"]) == [b"v"]
        c.close()
        assert await c.hmget(b"k", [b"f"]) == [b"v"]
        c.close()
        assert c.connects == 2

    asyncio.run(scenario())


def test_close_threadsafe_from_another_thread_closes_on_the_loop(
    redis: RedisServer, ref: Redis
) -> None:
    """The store is dropped by worker threads too: the close runs on the client's loop."""
    import threading

    ref.hset(b"k", mapping={b"f": b"v"})
    c = client_for(redis)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        first = asyncio.run_coroutine_threadsafe(c.hmget(b"k", [b"f"]), loop).result(10)
        assert first == [b"v"] and clients_connected(ref) >= 2  # ref + this client
        before = clients_connected(ref)
        c.close_threadsafe()  # this thread is not the loop's
        deadline = time.monotonic() + 5
        while clients_connected(ref) >= before and time.monotonic() < deadline:
            time.sleep(0.02)
        assert clients_connected(ref) == before - 1
        again = asyncio.run_coroutine_threadsafe(c.hmget(b"k", [b"f"]), loop).result(10)
        assert again == [b"v"] and c.connects == 2
        c.close_threadsafe()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


# 8 ---------------------------------------------------------------------------------


@contextmanager
def redis_process(root: Path, args: list[str], **ping_kwargs: Any) -> Iterator[int]:
    """A redis-server on 127.0.0.1 with extra `args` (`{port}` stands for its port);
    yields the port once redis-py, with `ping_kwargs`, gets a PING answered."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("install Debian's redis-server (apt-get install -y redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--dir", str(root), "--save", "",
         "--appendonly", "no", "--protected-mode", "no",
         *(a.replace("{port}", str(port)) for a in args)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        admin = Redis(host="127.0.0.1", port=port, **ping_kwargs)
        deadline = time.monotonic() + 20
        while True:
            try:
                admin.ping()
                break
            except RedisConnectionError:
                assert proc.poll() is None, "redis-server exited"
                assert time.monotonic() < deadline, "redis-server did not answer"
                time.sleep(0.05)
        admin.close()
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@contextmanager
def redis_with_password(root: Path, password: str) -> Iterator[int]:
    """A redis-server started with --requirepass; yields its port."""
    args = ["--port", "{port}", "--requirepass", password]
    with redis_process(root, args, password=password) as port:
        yield port


def test_auth_select_and_feast_connection_string(tmp_path: Path) -> None:
    """Authentication problems are RespError (configuration: retrying will not help),
    not RespUnavailable; the message names AUTH and the server's reason."""
    from feast.infra.online_stores.redis import RedisOnlineStore

    with redis_with_password(tmp_path, "secret") as port:
        admin = Redis(host="127.0.0.1", port=port, password="secret")
        admin.hset(b"k", mapping={b"f": b"db0"})
        Redis(host="127.0.0.1", port=port, password="secret", db=2).hset(b"k", b"f", b"db2")

        def attempt(c: AsyncRedis) -> Any:
            return asyncio.run(closing(c, c.hmget(b"k", [b"f"])))

        with pytest.raises(RespError, match="NOAUTH"):
            attempt(AsyncRedis("127.0.0.1", port))
        with pytest.raises(RespError, match=r"refused AUTH: WRONGPASS"):
            attempt(AsyncRedis("127.0.0.1", port, password="wrong"))
        with pytest.raises(RespError, match=r"refused AUTH: WRONGPASS"):
            attempt(AsyncRedis("127.0.0.1", port, username="nobody", password="secret"))
        assert attempt(AsyncRedis("127.0.0.1", port, password="secret")) == [b"db0"]
        assert attempt(AsyncRedis("127.0.0.1", port, username="default", password="secret")) == [
            b"db0"
        ]
        assert attempt(AsyncRedis("127.0.0.1", port, password="secret", db=2)) == [b"db2"]
        with pytest.raises(RespError, match="refused SELECT 99"):
            attempt(AsyncRedis("127.0.0.1", port, password="secret", db=99))

        # From the kwargs Feast parses out of its connection string.
        nodes, kwargs = RedisOnlineStore._parse_connection_string(
            f"127.0.0.1:{port},password=secret,db=2"
        )
        c = AsyncRedis.from_redis_kwargs(nodes[0]["host"], nodes[0]["port"], kwargs)
        assert c is not None and c.db == 2
        assert attempt(c) == [b"db2"]
        # Feast json-decodes values: a numeric password arrives as an int.
        admin.config_set("requirepass", "12345")
        nodes, kwargs = RedisOnlineStore._parse_connection_string(
            f"127.0.0.1:{port},password=12345"
        )
        assert kwargs["password"] == 12345
        c = AsyncRedis.from_redis_kwargs(nodes[0]["host"], nodes[0]["port"], kwargs)
        assert c is not None and attempt(c) == [b"db0"]


def test_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ssl=True (Feast's `ssl=true`): TLS with the default context, so the server's
    certificate is verified (here: trusted through SSL_CERT_FILE, as a CA bundle would be)."""
    from feast.infra.online_stores.redis import RedisOnlineStore

    openssl = shutil.which("openssl")
    if openssl is None:
        unavailable("install openssl (apt-get install -y openssl)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    args = ["--port", "0", "--tls-port", "{port}", "--tls-cert-file", str(cert),
            "--tls-key-file", str(key), "--tls-auth-clients", "no"]  # fmt: skip
    with redis_process(tmp_path, args, ssl=True, ssl_ca_certs=str(cert)) as port:
        Redis(host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=str(cert)).hset(b"k", b"f", b"v")
        nodes, kwargs = RedisOnlineStore._parse_connection_string(f"127.0.0.1:{port},ssl=true")
        untrusted = AsyncRedis.from_redis_kwargs(nodes[0]["host"], nodes[0]["port"], kwargs)
        assert untrusted is not None and untrusted.ssl
        with pytest.raises(RespUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            asyncio.run(untrusted.ping())
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # read when the client is made
        c = AsyncRedis.from_redis_kwargs(nodes[0]["host"], nodes[0]["port"], kwargs)
        assert c is not None
        assert asyncio.run(closing(c, c.hmget(b"k", [b"f", b"g"]))) == [b"v", None]


def test_from_redis_kwargs_declines_what_it_does_not_support() -> None:
    make = AsyncRedis.from_redis_kwargs
    c = make("h", "6379", {"ssl": True, "db": "3", "socket_timeout": 0.25, "retry": None})
    assert c is not None
    assert (c.port, c.ssl, c.db, c.timeout_s, c.connect_timeout_s) == (6379, True, 3, 0.25, 0.25)
    default = make("h", 1, {}, timeout_s=0.5)
    assert default is not None and default.timeout_s == 0.5
    for unsupported in (
        {"ssl_cert_reqs": "none"},
        {"decode_responses": True},
        {"skip_full_coverage_check": True},
        {"ssl": "yes"},
        {"db": -1},
        {"db": True},
        {"username": "u"},  # a username without a password
        {"password": True},
        {"socket_timeout": 0},
        {"retry": object()},
    ):
        assert make("h", 1, unsupported) is None, unsupported


# 9 ---------------------------------------------------------------------------------


def test_one_client_across_event_loops(redis: RedisServer, ref: Redis) -> None:
    ref.hset(b"k", mapping={b"f": b"v"})
    c = client_for(redis)
    baseline = clients_connected(ref)

    async def concurrent_reads() -> list[Any]:
        return await asyncio.gather(*(c.hmget(b"k", [b"f"]) for _ in range(20)))

    def server_sees(n: int) -> None:
        deadline = time.monotonic() + 5
        while clients_connected(ref) != baseline + n and time.monotonic() < deadline:
            time.sleep(0.02)
        assert clients_connected(ref) == baseline + n

    assert asyncio.run(concurrent_reads()) == [[b"v"]] * 20
    server_sees(0)  # the connection closed with its loop: no socket left behind
    assert asyncio.run(concurrent_reads()) == [[b"v"]] * 20
    assert c.connects == 2  # reconnected on the second loop, once for all 20 calls
    # A loop that is still alive (not run by asyncio.run, not closed) keeps its
    # connection; another loop using the client must not borrow it.
    alive = asyncio.new_event_loop()
    try:
        assert alive.run_until_complete(concurrent_reads()) == [[b"v"]] * 20
        server_sees(1)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            assert runner.run(concurrent_reads()) == [[b"v"]] * 20
        assert c.connects == 4
        # The live loop's connection was dropped for the new one; its socket closes
        # as soon as its own loop runs (asyncio transports close on their loop).
        alive.run_until_complete(asyncio.sleep(0))
        server_sees(0)
    finally:
        alive.run_until_complete(alive.shutdown_asyncgens())
        alive.close()
