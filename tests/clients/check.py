"""Independent clients against pagi-server's examples (see run.sh).

Each check starts the server it needs (`pagi-server --app NN` on a free loopback port), runs a real
client against it, and says ok or FAIL. Exit status 1 if anything failed.
"""
import os
import socket
import subprocess
import sys
import time

import httpx

BIN, WORK, HERE = sys.argv[1], sys.argv[2], sys.argv[3]
FAILED = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        FAILED.append(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`pagi-server --app APP` on a free port, stopped on exit."""

    def __init__(self, app, *extra, env=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [BIN, "--app", app, "--host", "127.0.0.1", "--port", str(self.port), "-q",
             "--no-access-log", *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, **(env or {})})
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{app} did not start")

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def curl(*args):
    r = subprocess.run(["curl", "-s", "--max-time", "10", *args], capture_output=True, timeout=20)
    return r.stdout


def curl_checks():
    with Server("02-streaming-response") as s:
        raw = curl("--raw", f"{s.url}/?delay_ms=20")
        check(raw.endswith(b"\r\n0\r\nx-chunks: 3\r\n\r\n"),
              f"curl --raw: the chunked body ends with its trailer ({raw[-40:]!r})")
        plain = curl("--http1.0", "-D", "-", f"{s.url}/?delay_ms=20")
        head, _, body = plain.partition(b"\r\n\r\n")
        check(b"transfer-encoding" not in head.lower() and body.count(b"chunk") == 3,
              "curl --http1.0: no chunked framing, the whole body until close")
    with Server("03-request-body") as s:
        out = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
             "-H", "Transfer-Encoding: gzip, chunked", "--data-binary", "abc", s.url],
            capture_output=True, timeout=20).stdout
        check(out == b"501", f"curl: Transfer-Encoding gzip, chunked is refused with 501 ({out!r})")
    root = os.path.join(WORK, "www")
    os.makedirs(root, exist_ok=True)
    data = bytes(i % 251 for i in range(300_000))
    with open(os.path.join(root, "data.bin"), "wb") as f:
        f.write(data)
    with Server("10-static-files", env={"PAGI_STATIC_ROOT": root}) as s:
        whole = curl(f"{s.url}/data.bin")
        check(whole == data, "curl: a 300 KB file arrives whole")
        part = curl("-r", "1000-1999", f"{s.url}/data.bin")
        check(part == data[1000:2000], "curl -r: a byte range")
        head = curl("-I", f"{s.url}/data.bin")
        check(b"content-length: 300000" in head.lower() and b"etag:" in head.lower(),
              "curl -I: HEAD gives the length and the ETag")


def httpx_checks():
    with Server("01-hello-http") as s, httpx.Client(timeout=10) as c:
        r = c.get(s.url)
        check(r.status_code == 200 and r.text == "Hello from PAGI!\n", "httpx: hello")
        check("date" in r.headers, "httpx: the response has a Date")
    with Server("03-request-body") as s, httpx.Client(timeout=10) as c:
        body = os.urandom(100_000)
        r = c.post(s.url, content=body)
        check(r.status_code == 200 and r.content == body, "httpx: a 100 KB body echoed")

        def pieces():
            for i in range(5):
                yield bytes([65 + i]) * 1000
        r = c.post(s.url, content=pieces())
        check(r.content == b"".join(pieces()), "httpx: a chunked upload echoed")
    with Server("02-streaming-response") as s, httpx.Client(timeout=10) as c:
        times = []
        with c.stream("GET", f"{s.url}/?delay_ms=150") as r:
            for chunk in r.iter_raw():
                if chunk:
                    times.append(time.monotonic())
        spread = times[-1] - times[0] if len(times) > 1 else 0
        check(len(times) >= 3 and spread >= 0.25,
              f"httpx: streamed chunks arrive as sent ({len(times)} over {spread:.2f}s)")
    with Server("07-sse-clock") as s, httpx.Client(timeout=10) as c:
        with c.stream("GET", f"{s.url}/?n=2",
                      headers={"accept": "text/event-stream"}) as r:
            text = r.read().decode()
        check(r.headers.get("content-type", "").startswith("text/event-stream")
              and text.count("event: tick") == 2, "httpx: an SSE stream of two ticks")
    with Server("12-utf8") as s, httpx.Client(timeout=10) as c:
        r = c.post(f"{s.url}/caf%C3%A9?q=%E2%98%95", content="héllo ☕".encode())
        check(r.status_code == 200 and "café" in r.text and "☕" in r.text,
              "httpx: UTF-8 path, query and body round trip")


def eventsource_checks():
    node = ["node", os.path.join(HERE, "eventsource.mjs")]
    with Server("05-sse-broadcaster") as s:
        r = subprocess.run(node + [f"{s.url}/events?n=3"], capture_output=True, text=True,
                           timeout=30)
        lines = r.stdout.splitlines()
        updates = [l for l in lines if l.startswith("update ")]
        check(r.returncode == 0 and [u.split()[1] for u in updates] == ["1", "2", "3"]
              and any(l.startswith("done ") for l in lines),
              f"eventsource (Node): three updates with ids 1-3, then done ({lines})")
    with Server("07-sse-clock") as s:
        r = subprocess.run(node + [f"{s.url}/?n=5", "tick", "2"], capture_output=True,
                           text=True, timeout=30)
        ticks = [l for l in r.stdout.splitlines() if l.startswith("tick ")]
        check(r.returncode == 0 and len(ticks) == 2, f"eventsource (Node): ticks ({ticks})")


curl_checks()
httpx_checks()
eventsource_checks()
print(f"clients: {'all checks passed' if not FAILED else f'{len(FAILED)} failed'}")
sys.exit(1 if FAILED else 0)
