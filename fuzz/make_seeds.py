#!/usr/bin/env python3
"""Writes the seed corpus in fuzz/corpus/<target>/ (checked in; rerun after changing a target's
input layout). Compressed payloads come from zlib's raw deflate (a real compressor, not ours).

    python3 fuzz/make_seeds.py
"""
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
MASK = bytes([0x37, 0xFA, 0x21, 0x3D])


def frame(b0, payload, mask=MASK):
    """A client frame (masked unless mask is None)."""
    n = len(payload)
    m = 0x80 if mask is not None else 0
    if n < 126:
        head = bytes([b0, m | n])
    elif n <= 0xFFFF:
        head = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def close(code=None, reason=b""):
    return frame(0x88, b"" if code is None else struct.pack(">H", code) + reason)


def deflate(data, wbits=15, level=6):
    """permessage-deflate payload: raw deflate, sync flush, 00 00 ff ff stripped."""
    c = zlib.compressobj(level, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4] or b"\x00"


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- frame_decoder: [cfg] [n] [n x (op, arg)] wire -------------------------------------------
def fd(name, wire, cfg=0, ops=b""):
    assert len(ops) % 2 == 0
    write("frame_decoder", name, bytes([cfg, len(ops) // 2]) + ops + wire)


greek = "κόσμε €𝄞".encode()
fd("text_and_close", frame(0x81, b"Hello") + close(1000, b"bye"))
fd("binary_16bit_len", frame(0x82, bytes(range(200))) + close())
fd("fragmented_with_ping",
   frame(0x01, b"Hel") + frame(0x89, b"ping!") + frame(0x00, b"l") + frame(0x80, b"o")
   + frame(0x8A, b"pong") + close(1001))
fd("utf8_split_across_fragments",
   frame(0x01, greek[:3]) + frame(0x00, greek[3:10]) + frame(0x80, greek[10:]), cfg=0x10)
fd("close_codes", close(3000, "é".encode()) + close(1002))
fd("bad_close_one_byte", frame(0x88, b"\x03"))
fd("unmasked", frame(0x81, b"Hi", mask=None))
fd("rsv1_without_deflate", frame(0xC1, b"\xf2\x48\xcd\xc9\xc9\x07\x00"))
fd("len64_partial", bytes([0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0]) + MASK + b"abc")
fd("invalid_utf8", frame(0x81, b"ok\xed\xa0\x80"))
# max_message_size 125 (cfg bits 0-2 = 3), chunks of 1 byte (bits 4-7 = 1), with ops:
# feed 10, send text 40, ping 5, partial write, close 1000 "bye…", feed 3, write all.
fd("ops_send_ping_close",
   frame(0x81, b"a" * 100) + frame(0x82, b"b" * 130) + frame(0x89, b"x") + close(1000),
   cfg=0x13,
   ops=bytes([0, 9, 2, 40, 4, 5, 6, 7, 15, 0, 0, 2, 8, 3]))
# defer_failure_close (bit 3): a good message, then RSV2; sends after the failure, then Close.
fd("deferred_failure", frame(0x81, b"hi") + frame(0xA1, b"x"), cfg=0x08,
   ops=bytes([0, 7, 0, 20, 2, 2, 7, 0, 3, 1]))

# --- handshake: an HTTP request head ---------------------------------------------------------
def req(ext_lines, key=b"dGhlIHNhbXBsZSBub25jZQ==", extra=b""):
    h = (b"GET /chat HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nConnection: Upgrade\r\n"
         b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n")
    h += b"Sec-WebSocket-Key: " + key + b"\r\n" + extra
    for e in ext_lines:
        h += b"Sec-WebSocket-Extensions: " + e + b"\r\n"
    return h + b"\r\n"


write("handshake", "chromium", req(
    [b"permessage-deflate; client_max_window_bits"],
    key=b"x3JJHMbDL1EzLkh9GBhXDw==",
    extra=b"Pragma: no-cache\r\nCache-Control: no-cache\r\nOrigin: http://127.0.0.1:8000\r\n"
          b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0.0.0 Safari/537.36\r\n"
          b"Accept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\n"))
write("handshake", "firefox", req(
    [b"permessage-deflate"],
    key=b"AQIDBAUGBwgJCgsMDQ4PEA==",
    extra=b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
          b"Accept: */*\r\nSec-Fetch-Dest: empty\r\nSec-Fetch-Mode: websocket\r\n"
          b"Sec-Fetch-Site: same-origin\r\n"))
write("handshake", "all_params", req([
    b"permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
    b"server_max_window_bits=10; client_max_window_bits=12"]))
write("handshake", "several_offers", req([
    b"x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=8, "
    b"permessage-deflate; bogus",
    b"Permessage-Deflate ;\tclient_max_window_bits=\"9\" ; SERVER_NO_CONTEXT_TAKEOVER"]))
write("handshake", "bad_key", req([b"permessage-deflate; client_max_window_bits=8"],
                                 key=b"dGhlIHNhbXBsZSBub25jZR=="))
write("handshake", "bare_offer_line",
      b"permessage-deflate; client_max_window_bits; server_max_window_bits=15\n"
      b"dGhlIHNhbXBsZSBub25jZQ==\n")

# --- deflate: [flags] [server bits] [client bits] [cfg] ops ----------------------------------
def dfl(name, ops, flags=0, sbits=6, cbits=7, cfg=0):
    write("deflate", name, bytes([flags, sbits, cbits, cfg]) + ops)


def plain(unit, rep=0):
    """The target's plaintext encoding: u16 length, u8 repeat, the unit."""
    return struct.pack(">HB", len(unit), rep) + unit


def raw(payload):
    return struct.pack(">H", len(payload)) + payload


hello = b"Hello, permessage-deflate! " * 3
# kind 0x00: valid binary message; 0x28: valid text in 3 fragments; 0xA0: 3 fragments + pings.
dfl("valid_messages",
    bytes([0x00]) + plain(hello) + b"\x00"
    + bytes([0x28]) + plain("κόσμε ".encode() * 20, 3) + b"\x05"
    + bytes([0xA0]) + plain(bytes(range(64)), 9) + b"\x00")
# kind 0x01: a payload made by zlib (RFC 7692 §7.2.3.1 "Hello"), then one with a final block.
fin = zlib.compressobj(6, zlib.DEFLATED, -15)
fin_payload = fin.compress(b"final block") + fin.flush(zlib.Z_FINISH)
dfl("zlib_payloads",
    bytes([0x01]) + raw(b"\xf2\x48\xcd\xc9\xc9\x07\x00") + b"\x00"
    + bytes([0x01]) + raw(deflate(hello, 9, 9)) + b"\x03"
    + bytes([0x01]) + raw(fin_payload) + b"\x00"
    + bytes([0x29]) + raw(deflate("δέλτα".encode() * 30)) + b"\x00", flags=2)
# A bomb (4 MiB of zeros) against max_message_size 100 (cfg 2).
dfl("bomb", bytes([0x01]) + raw(deflate(bytes(4 << 20))[:2000]) + b"\x00", cfg=2)
# Damaged: byte flipped / truncated / inserted.
dfl("damaged",
    bytes([0x02]) + plain(hello) + b"\x00\x05\x00" + b"\x00"
    + bytes([0x02]) + plain(hello) + b"\x00\x07\x01" + b"\x00"
    + bytes([0x02]) + plain(hello) + b"\x00\x02\x02" + b"\x00")
# Plain message between compressed ones, and server round trips (0x04 binary, 0x0E text).
dfl("plain_and_round_trip",
    bytes([0x00]) + plain(hello) + b"\x00"
    + bytes([0x03]) + raw(b"not compressed") + b"\x00"
    + bytes([0x00]) + plain(hello) + b"\x00"
    + bytes([0x04]) + plain(b"A" * 300) + b"\x01"
    + bytes([0x0E]) + plain("€uro ".encode() * 40, 20) + b"\x00"
    + bytes([0x04]) + plain(b"") + b"\x00", flags=0, cfg=0x08)
# Context takeover both ways, small windows, level 9, compress_min_size 0.
dfl("small_windows_takeover",
    bytes([0x0E]) + plain(b"abcabcabc" * 50) + b"\x00"
    + bytes([0x00]) + plain(b"xyz" * 100, 2) + b"\x00"
    + bytes([0x04]) + plain(b"xyz" * 100, 2) + b"\x00", sbits=0, cbits=0, cfg=0x68)
