"""The clients of bench/blackhole-abuse.sh: each subcommand is one kind of abuse, or a probe that measures
what GitHub would see meanwhile. Standard library only. Each prints one line of figures on stdout."""

import asyncio
import base64
import json
import os
import signal
import socket
import sys
import time

HOST = "127.0.0.1"


async def connect(port, source=None, rcvbuf=None):
    """A connection to the blackhole from the loopback address `source`, with a small receive buffer if asked."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if source:
        sock.bind((source, 0))
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (HOST, port))
    return await asyncio.open_connection(sock=sock)


async def read_response(reader):
    """Reads one response with a Content-Length body; returns its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return status


async def until_sigterm():
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


async def flood(port, count, kinds, sources):
    """Issue 11's slow-body flood: `count` connections spread over `sources`, each sending a request head and
    then one byte (or one chunk) every 5 s, reconnecting at once whenever the server closes one. Prints how many
    the server closed, at SIGTERM."""
    heads = [b"POST /flood HTTP/1.1\r\nHost: b\r\nContent-Length: 20000000\r\n\r\n",
             b"POST /flood HTTP/1.1\r\nHost: b\r\nContent-Length: 2000000000\r\n\r\n",
             b"POST /flood HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\n"][:kinds]
    trickles = [b"x", b"x", b"1\r\nx\r\n"][:kinds]
    cut = 0

    async def attacker(i):
        nonlocal cut
        while True:
            try:
                reader, writer = await connect(port, sources[i % len(sources)])
                writer.write(heads[i % kinds])
                while True:
                    try:
                        if not await asyncio.wait_for(reader.read(512), 5):
                            break
                    except asyncio.TimeoutError:
                        writer.write(trickles[i % kinds])
                        await writer.drain()
                writer.close()
            except OSError:
                pass
            cut += 1
            await asyncio.sleep(0.1)

    for i in range(count):
        asyncio.get_running_loop().create_task(attacker(i))
    await until_sigterm()
    print(cut, flush=True)
    os._exit(0)  # cancelling a thousand tasks mid-wait_for can hang asyncio's shutdown


async def long_paths(port, count, length, conns):
    """`count` empty POSTs, each to its own path of `length` bytes, over `conns` keep-alive connections.
    Prints how many got 200 and the seconds taken."""
    ok = 0
    started = time.monotonic()

    async def client(c):
        nonlocal ok
        reader, writer = await connect(port)
        for i in range(c, count, conns):
            path = f"/{i:08d}".ljust(length, "p")
            writer.write(f"POST {path} HTTP/1.1\r\nHost: b\r\nContent-Length: 0\r\n\r\n".encode())
            status = await read_response(reader)  # not `ok += await …`: that reads `ok` before the wait
            ok += status == 200
        writer.close()

    await asyncio.gather(*(client(c) for c in range(conns)))
    print(ok, f"{time.monotonic() - started:.1f}", flush=True)


async def stuck(port, count, token, sources):
    """`count` subscribers spread over `sources`, each on its own path /stuck-N, that send their request and
    never read a byte. Prints "ready" once all are connected, and holds them until SIGTERM."""
    held = []
    for i in range(count):
        reader, writer = await connect(port, sources[i % len(sources)], rcvbuf=256 * 1024)
        writer.write(f"GET /stuck-{i} HTTP/1.1\r\nHost: b\r\nAccept: text/event-stream\r\n"
                     f"Authorization: Bearer {token}\r\n\r\n".encode())
        await writer.drain()
        held.append(writer)
    print("ready", flush=True)
    await until_sigterm()


async def big_posts(port, count, size):
    """`count` POSTs of `size` bytes, the Nth to /stuck-N, one after another on one connection.
    Prints how many got 200 and the seconds taken."""
    body = b"x" * size
    reader, writer = await connect(port)
    ok = 0
    started = time.monotonic()
    for i in range(count):
        writer.write(f"POST /stuck-{i} HTTP/1.1\r\nHost: b\r\nContent-Length: {size}\r\n\r\n".encode())
        writer.write(body)
        await writer.drain()
        status = await read_response(reader)
        ok += status == 200
    print(ok, f"{time.monotonic() - started:.1f}", flush=True)


async def declared(port, count):
    """`count` POSTs declaring 32 MiB that then send one byte a second, reconnecting whenever the server
    closes one. Prints "ready" once all have sent their heads, and how many the server closed at SIGTERM."""
    cut = 0
    ready = asyncio.Event()
    started = 0

    async def attacker():
        nonlocal cut, started
        while True:
            try:
                reader, writer = await connect(port)
                writer.write(b"POST /flood HTTP/1.1\r\nHost: b\r\nContent-Length: 33554432\r\n\r\n")
                await writer.drain()
                started += 1
                if started == count:
                    ready.set()
                while True:
                    try:
                        if not await asyncio.wait_for(reader.read(512), 1):
                            break
                    except asyncio.TimeoutError:
                        writer.write(b"x")
                        await writer.drain()
                writer.close()
            except OSError:
                pass
            cut += 1
            await asyncio.sleep(0.1)

    for _ in range(count):
        asyncio.get_running_loop().create_task(attacker())
    await ready.wait()
    print("ready", flush=True)
    await until_sigterm()
    print(cut, flush=True)
    os._exit(0)


async def stream_probe(port, token, count, interval):
    """Subscribes to /alice, then POSTs `count` push-shaped deliveries of 7.6 KB there, one every `interval`
    seconds, and times each from the moment its POST is sent to the moment it arrives on the stream. Prints
    how many POSTs got 200, how many arrived on the stream, and the median and largest times in ms."""
    reader, writer = await connect(port)
    writer.write(f"GET /alice HTTP/1.1\r\nHost: b\r\nAccept: text/event-stream\r\n"
                 f"Authorization: Bearer {token}\r\n\r\n".encode())
    await reader.readuntil(b"\r\n\r\n")
    sent, arrived = {}, {}

    async def read_stream():
        text = b""
        while True:
            size = int((await reader.readline()).strip(), 16)
            if size == 0:
                return
            text += (await reader.readexactly(size + 2))[:-2]
            while b"\n\n" in text:
                event, text = text.split(b"\n\n", 1)
                fields = dict(line.split(b": ", 1) for line in event.split(b"\n") if b": " in line)
                if fields.get(b"event") == b"delivery":
                    body = json.loads(base64.b64decode(json.loads(fields[b"data"])["body"]))
                    arrived[body["probe"]] = time.monotonic()

    streaming = asyncio.get_running_loop().create_task(read_stream())
    pad = "x" * 7600
    ok = 0
    for i in range(count):
        body = json.dumps({"probe": i, "pad": pad}).encode()
        post_reader, post_writer = await connect(port)
        sent[i] = time.monotonic()
        post_writer.write(b"POST /alice HTTP/1.1\r\nHost: b\r\nConnection: close\r\nX-GitHub-Event: push\r\n"
                          b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        status = await read_response(post_reader)
        ok += status == 200
        post_writer.close()
        await asyncio.sleep(interval)
    await asyncio.sleep(2)
    streaming.cancel()
    times = sorted((arrived[i] - sent[i]) * 1000 for i in arrived)
    median = times[(len(times) - 1) // 2] if times else float("nan")
    largest = times[-1] if times else float("nan")
    print(ok, len(arrived), f"{median:.1f}", f"{largest:.1f}", flush=True)


def main():
    command, port, *rest = sys.argv[1:]
    port = int(port)
    if command == "flood":
        run = flood(port, int(rest[0]), int(rest[1]), rest[2].split(","))
    elif command == "long-paths":
        run = long_paths(port, int(rest[0]), int(rest[1]), int(rest[2]))
    elif command == "stuck":
        run = stuck(port, int(rest[0]), rest[1], rest[2].split(","))
    elif command == "big-posts":
        run = big_posts(port, int(rest[0]), int(rest[1]))
    elif command == "declared":
        run = declared(port, int(rest[0]))
    elif command == "stream-probe":
        run = stream_probe(port, rest[0], int(rest[1]), float(rest[2]))
    else:
        sys.exit(f"blackhole-abuse.py: no subcommand {command}")
    asyncio.run(run)


main()
