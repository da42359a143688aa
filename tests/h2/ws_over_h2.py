"""RFC 8441 with an independent client (Python `h2` for the HTTP/2 framing, WebSocket frames by
hand): the seed's session over one h2 stream (extended CONNECT, 200, `server tick #1`,
`hello` -> `you said: HELLO`, Close), then two WebSocket streams and a plain request multiplexed
on one connection. Usage: ws_over_h2.py HOST PORT   (pagi-server --app 18, cleartext h2c)."""
import os
import socket
import struct
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.settings

HOST, PORT = sys.argv[1], int(sys.argv[2])
FAILED = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        FAILED.append(what)


def ws_frame(opcode, payload):
    """A masked client frame."""
    mask = os.urandom(4)
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def ws_parse(buf):
    """(opcode, payload, rest) of the first whole server frame in buf, or None."""
    if len(buf) < 2:
        return None
    op, n = buf[0] & 0x0F, buf[1] & 0x7F
    i = 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, i = struct.unpack("!H", buf[2:4])[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, i = struct.unpack("!Q", buf[2:10])[0], 10
    if len(buf) < i + n:
        return None
    return op, buf[i:i + n], buf[i + n:]


class H2:
    def __init__(self):
        self.sock = socket.create_connection((HOST, PORT), timeout=5)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.flush()
        self.data = {}      # stream id -> bytes received
        self.heads = {}     # stream id -> response headers
        self.ended = set()
        self.settings = {}
        self.pump(until=lambda: self.settings)

    def flush(self):
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def pump(self, until, timeout=5):
        deadline = time.time() + timeout
        while not until():
            if time.time() > deadline:
                raise TimeoutError("nothing arrived in time")
            self.sock.settimeout(max(0.05, deadline - time.time()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise ConnectionError("connection closed")
            for e in self.conn.receive_data(chunk):
                if isinstance(e, h2.events.RemoteSettingsChanged):
                    self.settings.update({k: v.new_value for k, v in e.changed_settings.items()})
                elif isinstance(e, h2.events.ResponseReceived):
                    self.heads[e.stream_id] = dict(e.headers)
                elif isinstance(e, h2.events.DataReceived):
                    self.data[e.stream_id] = self.data.get(e.stream_id, b"") + e.data
                    self.conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                elif isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)):
                    self.ended.add(e.stream_id)
            self.flush()

    def websocket(self, path="/"):
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [(":method", "CONNECT"), (":protocol", "websocket"),
                                     (":scheme", "http"), (":path", path),
                                     (":authority", f"{HOST}:{PORT}"),
                                     ("sec-websocket-version", "13")])
        self.flush()
        self.pump(until=lambda: sid in self.heads)
        return sid

    def ws_send(self, sid, opcode, payload):
        self.conn.send_data(sid, ws_frame(opcode, payload))
        self.flush()

    def ws_next(self, sid):
        """The next WebSocket frame on stream sid: (opcode, payload)."""
        holder = {}

        def got():
            parsed = ws_parse(self.data.get(sid, b""))
            if parsed:
                holder["f"] = parsed[:2]
                self.data[sid] = parsed[2]
            return "f" in holder
        self.pump(until=got)
        return holder["f"]


c = H2()
check(c.settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL) == 1,
      "the server advertises SETTINGS_ENABLE_CONNECT_PROTOCOL")
sid = c.websocket()
check(c.heads[sid].get(b":status") == b"200", "extended CONNECT answered 200")
check(b"sec-websocket-accept" not in c.heads[sid], "no Sec-WebSocket-Accept on h2")
op, payload = c.ws_next(sid)
check((op, payload) == (1, b"server tick #1"), f"server tick #1 arrived unprompted ({payload!r})")
c.ws_send(sid, 1, b"hello")
while True:
    op, payload = c.ws_next(sid)
    if not payload.startswith(b"server tick"):
        break
check(payload == b"you said: HELLO", f"hello came back as 'you said: HELLO' ({payload!r})")
c.ws_send(sid, 8, struct.pack("!H", 1000))
while True:
    op, payload = c.ws_next(sid)
    if op == 8:
        break
check(struct.unpack("!H", payload[:2])[0] == 1000, "the Close is answered with 1000")

# Two sessions and a request on one connection.
a, b = c.websocket(), c.websocket()
req = c.conn.get_next_available_stream_id()
c.conn.send_headers(req, [(":method", "GET"), (":scheme", "http"), (":path", "/"),
                          (":authority", f"{HOST}:{PORT}")], end_stream=True)
c.flush()
c.ws_send(a, 1, b"from a")
c.ws_send(b, 1, b"from b")
replies = {}
for s in (a, b):
    while True:
        op, payload = c.ws_next(s)
        if not payload.startswith(b"server tick"):
            replies[s] = payload
            break
c.pump(until=lambda: req in c.ended)
check(replies == {a: b"you said: FROM A", b: b"you said: FROM B"},
      f"two WebSocket streams on one connection ({replies})")
# The seed app serves WebSocket only; its answer to a plain request is the
# spec's backstop, a 500 (and the server logs the app's error).
status = c.heads.get(req, {}).get(b":status")
check(status == b"500", f"a plain request multiplexed next to them is answered ({status})")
print(f"ws over h2: {'all checks passed' if not FAILED else f'{len(FAILED)} failed'}")
sys.exit(1 if FAILED else 0)
