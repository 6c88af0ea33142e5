#!/usr/bin/env python3
"""A watch feed client in its own process, for tests/integration/watch_process_test.cpp.

Connects to `GET /v1/watch` with a bearer token (python3-websockets from Debian, asyncio API of
websockets 10) and prints one JSON line per event, as received, flushed at once. It always ends:
after `--count` events, after the event `--until` names, when the server closes the feed, or at
`--timeout` seconds. Its last line says why:

  {"end": "count" | "until" | "closed" | "timeout" | "error", "code": N, "reason": "...",
   "events": N}

`--hold-until FILE` is the slow consumer: it reads nothing (a 4 KiB receive buffer and a library
queue of one message) until FILE exists, then drains the socket to learn how the server closed it.
"""

import argparse
import asyncio
import json
import os
import socket
import sys
import time
import urllib.parse

import websockets


def emit(obj):
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def matches_until(event, until):
    if until is None:
        return False
    etype, _, job = until.partition(":")
    if event.get("type") != etype:
        return False
    return not job or str(event.get("data", {}).get("job")) == job


async def run(args):
    url = urllib.parse.urlsplit(args.url)
    host, port = url.hostname, url.port
    target = "ws://%s:%d/v1/watch" % (host, port)
    if args.query:
        target += "?" + args.query
    token = args.token
    if args.token_file:
        with open(args.token_file) as f:
            token = f.read().strip()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if args.hold_until:
        # A small window: the server's socket buffer, then its queue, fill sooner.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        sock.connect((host, port))
    except OSError as e:
        emit({"end": "error", "reason": repr(e)})
        return
    deadline = time.monotonic() + args.timeout
    events = 0
    end = {"end": "timeout"}
    try:
        ws = await websockets.connect(
            target,
            sock=sock,
            extra_headers={"Authorization": "Bearer " + token},
            max_queue=1 if args.hold_until else 1024,
            read_limit=4096 if args.hold_until else 2**16,
            max_size=2**22,
            ping_interval=None,
            open_timeout=10,
        )
    except websockets.exceptions.InvalidStatusCode as e:
        emit({"end": "refused", "status": e.status_code})
        return
    except Exception as e:  # Reported, never raised: the test reads the last line.
        emit({"end": "error", "reason": repr(e)})
        return
    emit({"connected": True})
    drain_start = None
    try:
        if args.hold_until:
            while not os.path.exists(args.hold_until):
                if time.monotonic() > deadline:
                    emit({"end": "timeout", "events": events})
                    return
                await asyncio.sleep(0.01)
            drain_start = time.monotonic()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                text = await asyncio.wait_for(ws.recv(), timeout=left)
            except asyncio.TimeoutError:
                break
            event = json.loads(text)
            events += 1
            if not args.hold_until:
                emit(event)
            if args.count and events >= args.count:
                end = {"end": "count"}
                break
            if matches_until(event, args.until):
                end = {"end": "until"}
                break
    except websockets.exceptions.ConnectionClosed as e:
        end = {"end": "closed", "code": e.code, "reason": e.reason}
    except Exception as e:  # Reported, never raised: the test reads the last line.
        end = {"end": "error", "reason": repr(e)}
    finally:
        end["events"] = events
        if args.hold_until and drain_start is not None:
            end["drain_s"] = round(time.monotonic() - drain_start, 3)
        emit(end)
        try:
            await asyncio.wait_for(ws.close(), timeout=1)
        except Exception:
            pass


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", required=True, help="the scheduler, http://HOST:PORT")
    p.add_argument("--token")
    p.add_argument("--token-file")
    p.add_argument("--query", default="", help="the query, e.g. topics=jobs&since=12")
    p.add_argument("--count", type=int, default=0, help="stop after this many events")
    p.add_argument("--until", help="stop after this event: TYPE or TYPE:JOB")
    p.add_argument("--timeout", type=float, default=30, help="seconds, in all")
    p.add_argument("--hold-until", help="read nothing until this file exists")
    args = p.parse_args()
    if not args.token and not args.token_file:
        p.error("--token or --token-file")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
