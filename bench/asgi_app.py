"""ASGI peer app for bench/run (served by granian and uvicorn).

- HTTP, any path: 200 `hello` (text/plain), keep-alive; a request other than GET has its
  body read first.
- WebSocket, any path: echo every text/binary message back unchanged.
- With TICK_MS=N (N > 0) each WebSocket connection also gets an unsolicited text message
  `server tick #K` every N ms, pushed by a second task running concurrently with the echo
  loop (the Python equivalent of PAGI example 18, minus the uppercasing). The idle workload
  uses this.
- Lifespan: startup/shutdown acknowledged.
"""

import asyncio
import os

TICK_S = int(os.environ.get("TICK_MS", "0") or "0") / 1000.0

HELLO_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")],
}
HELLO_BODY = {"type": "http.response.body", "body": b"hello"}


async def _ticker(send):
    n = 0
    try:
        while True:
            await asyncio.sleep(TICK_S)
            n += 1
            await send({"type": "websocket.send", "text": f"server tick #{n}"})
    except Exception:  # the connection went away; the receive loop ends the handler
        return


async def _websocket(receive, send):
    first = await receive()
    if first["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    ticker = asyncio.ensure_future(_ticker(send)) if TICK_S > 0 else None
    try:
        while True:
            msg = await receive()
            kind = msg["type"]
            if kind == "websocket.receive":
                text = msg.get("text")
                if text is not None:
                    await send({"type": "websocket.send", "text": text})
                else:
                    await send({"type": "websocket.send", "bytes": msg.get("bytes") or b""})
            elif kind == "websocket.disconnect":
                return
    finally:
        if ticker is not None:
            ticker.cancel()


async def _lifespan(receive, send):
    while True:
        msg = await receive()
        if msg["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif msg["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    kind = scope["type"]
    if kind == "http":
        if scope["method"] != "GET":
            # Read the whole body first (bench/hostile's slow POSTs wait here).
            while True:
                msg = await receive()
                if msg["type"] != "http.request" or not msg.get("more_body"):
                    break
        await send(HELLO_START)
        await send(HELLO_BODY)
    elif kind == "websocket":
        await _websocket(receive, send)
    elif kind == "lifespan":
        await _lifespan(receive, send)
