"""Real clients against pagi-server's transports (run by tests/transports/run.sh).

- TLS: Python `websockets` over wss:// runs the seed's session (tick, `you said: HELLO`,
  tick); curl and `openssl s_client` for HTTPS, ALPN and client certificates (a test CA made
  here with trustme).
- Unix sockets: `curl --unix-socket`, and the seed's session over the socket with `websockets`.
- Behind nginx (a real reverse proxy, WebSocket upgrade configured, TLS terminated there):
  with --proxy-headers the app sees the original client and scheme, a WebSocket session runs
  through it, and a direct client forging X-Forwarded-For is not believed.
- Socket activation as systemd does it: a listening socket passed as fd 3 with LISTEN_FDS=1
  is served, and READY=1 / STOPPING=1 arrive on NOTIFY_SOCKET.

Everything binds 127.0.0.x; every process started here is killed at the end.
Usage: python check.py PAGI_SERVER_BINARY WORKDIR
"""

import asyncio
import base64
import hashlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

import trustme
import websockets

BIN, WORK = sys.argv[1], sys.argv[2]
PROCS = []
FAILED = []


def check(ok, what):
    print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)
    if not ok:
        FAILED.append(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port=None, path=None, proc=None, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited early: {proc.args}")
        try:
            if path:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(path)
            else:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"not listening: {port or path}")


def start(args, **ready):
    log = open(os.path.join(WORK, f"server-{len(PROCS)}.log"), "w")
    p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    PROCS.append(p)
    wait_ready(proc=p, **ready)
    return p


def stop_all():
    for p in PROCS:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in PROCS:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30, **kw)
    return r.returncode, r.stdout + r.stderr


async def seed_session(connect):
    """The seed's session: a tick arrives unprompted, hello comes back uppercased."""
    async with connect as ws:
        first = await asyncio.wait_for(ws.recv(), 3)
        await ws.send("hello")
        got = [first]
        while "you said: HELLO" not in got or sum(m.startswith("server tick") for m in got) < 2:
            got.append(await asyncio.wait_for(ws.recv(), 3))
        return got


def certs():
    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    client = ca.issue_cert("alice@example.org", common_name="alice")
    paths = {k: os.path.join(WORK, k) for k in
             ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}
    ca.cert_pem.write_to_path(paths["ca.pem"])
    with open(paths["server.pem"], "wb") as f:
        for blob in server.cert_chain_pems:
            f.write(blob.bytes())
    server.private_key_pem.write_to_path(paths["server.key"])
    client.cert_chain_pems[0].write_to_path(paths["client.pem"])
    client.private_key_pem.write_to_path(paths["client.key"])
    return ca, server, paths


def tls_checks(paths, ca):
    port = free_port()
    start([BIN, "--app", "18", "--port", str(port), "-q", "--ssl-cert", paths["server.pem"],
           "--ssl-key", paths["server.key"]], port=port)
    ctx = ssl.create_default_context(cafile=paths["ca.pem"])
    got = asyncio.run(seed_session(websockets.connect(f"wss://localhost:{port}/", ssl=ctx)))
    check(got[0] == "server tick #1", f"wss: the first message is a tick ({got[0]!r})")
    check("you said: HELLO" in got, "wss: hello came back as 'you said: HELLO'")
    check("server tick #2" in got, "wss: ticks continue after the echo")

    port = free_port()
    start([BIN, "--app", "08", "--port", str(port), "-q", "--ssl-cert", paths["server.pem"],
           "--ssl-key", paths["server.key"], "--ssl-ca", paths["ca.pem"],
           "--ssl-client-cert", "optional"], port=port)
    url = f"https://localhost:{port}/"
    rc, out = run(["curl", "-sS", "--cacert", paths["ca.pem"], url])
    check(rc == 0 and "scheme: https" in out and "tls_version: 0x0304" in out,
          "curl https: scheme https, TLS 1.3 in the scope")
    check("client_cert_chain: 0 certificate(s)" in out, "curl https: no client certificate")
    rc, out = run(["curl", "-sS", "--cacert", paths["ca.pem"], "--cert", paths["client.pem"],
                   "--key", paths["client.key"], url])
    check(rc == 0 and "client_cert_name: CN=alice" in out and "client_cert_error: (none)" in out,
          "curl with a client certificate: its RFC 4514 name, verified")
    rc, out = run(["curl", "-sSk", "--tlsv1.2", "--tls-max", "1.2", url])
    check(rc == 0 and "tls_version: 0x0303" in out, "curl -k over TLS 1.2: tls_version 0x0303")
    rc, out = run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername",
                   "localhost", "-alpn", "http/1.1", "-CAfile", paths["ca.pem"]], input="")
    check("ALPN protocol: http/1.1" in out, "openssl s_client: ALPN http/1.1 negotiated")
    check("Verify return code: 0 (ok)" in out, "openssl s_client: the certificate chain verifies")


def unix_checks():
    path = os.path.join(WORK, "pagi.sock")
    start([BIN, "--app", "08", "--socket", path, "--socket-mode", "0660", "-q"], path=path)
    rc, out = run(["curl", "-sS", "--unix-socket", path, "http://localhost/"])
    check(rc == 0 and "client: (none: a Unix socket)" in out and "not using TLS" in out,
          "curl --unix-socket: no client, no TLS")
    check(oct(os.stat(path).st_mode & 0o777) == "0o660", "the socket file has mode 0660")
    path18 = os.path.join(WORK, "seed.sock")
    start([BIN, "--app", "18", "--socket", path18, "-q"], path=path18)
    got = asyncio.run(seed_session(websockets.unix_connect(path18, "ws://localhost/")))
    check("you said: HELLO" in got and got[0] == "server tick #1",
          "the seed's session over a Unix socket")


NGINX_CONF = """
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
daemon off;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {work}/nginx-tmp;
    proxy_temp_path {work}/nginx-tmp;
    fastcgi_temp_path {work}/nginx-tmp;
    uwsgi_temp_path {work}/nginx-tmp;
    scgi_temp_path {work}/nginx-tmp;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    server {{
        listen 127.0.0.1:{http_port};
        listen 127.0.0.1:{https_port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location /seed {{
            proxy_pass http://127.0.0.1:{seed_port}/;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
        location / {{
            proxy_pass http://127.0.0.1:{app_port};
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""


def nginx_checks(paths):
    app_port, seed_port, http_port, https_port = (free_port() for _ in range(4))
    trust = ["--proxy-headers", "--forwarded-allow-ips", "127.0.0.1"]
    start([BIN, "--app", "08", "--port", str(app_port), "-q"] + trust, port=app_port)
    start([BIN, "--app", "18", "--port", str(seed_port), "-q"] + trust, port=seed_port)
    os.makedirs(os.path.join(WORK, "nginx-tmp"), exist_ok=True)
    conf = os.path.join(WORK, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(work=WORK, http_port=http_port, https_port=https_port,
                                  app_port=app_port, seed_port=seed_port,
                                  cert=paths["server.pem"], key=paths["server.key"]))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    start([nginx, "-c", conf, "-p", WORK], port=https_port)
    # From 127.0.0.2 through nginx: the app sees 127.0.0.2, and https when nginx terminated TLS.
    rc, out = run(["curl", "-sS", "--interface", "127.0.0.2", f"http://127.0.0.1:{http_port}/"])
    check(rc == 0 and "client: 127.0.0.2:0" in out and "scheme: http" in out,
          f"through nginx (http): the app sees the original client ({out.splitlines()[:2]})")
    rc, out = run(["curl", "-sS", "--interface", "127.0.0.2", "--cacert", paths["ca.pem"],
                   f"https://localhost:{https_port}/"])
    check(rc == 0 and "client: 127.0.0.2:0" in out and "scheme: https" in out,
          "through nginx (TLS at nginx): client and scheme https")
    # Directly, from an address that is not trusted, forging the header: not believed.
    rc, out = run(["curl", "-sS", "--interface", "127.0.0.2", "-H",
                   "X-Forwarded-For: 203.0.113.66", "-H", "X-Forwarded-Proto: https",
                   f"http://127.0.0.1:{app_port}/"])
    check(rc == 0 and "client: 127.0.0.2:" in out and "203.0.113.66" not in out
          and "scheme: http" in out, "a direct client forging X-Forwarded-For is not believed")
    ctx = ssl.create_default_context(cafile=paths["ca.pem"])
    got = asyncio.run(seed_session(websockets.connect(f"wss://localhost:{https_port}/seed",
                                                      ssl=ctx)))
    check("you said: HELLO" in got and got[0] == "server tick #1",
          "the seed's session through nginx (wss at nginx, ws behind it)")


def activation_checks():
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    port = lsock.getsockname()[1]
    notify_path = os.path.join(WORK, "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.settimeout(10)
    fd = lsock.fileno()
    env = dict(os.environ, LISTEN_FDS="1", NOTIFY_SOCKET=notify_path)
    env.pop("LISTEN_PID", None)  # as for a manager that cannot know the pid in advance
    log = open(os.path.join(WORK, "activation.log"), "w")
    p = subprocess.Popen([BIN, "--app", "08", "-q"], env=env, stdout=log,
                         stderr=subprocess.STDOUT, pass_fds=(fd,),
                         preexec_fn=lambda: os.dup2(fd, 3), start_new_session=True)
    PROCS.append(p)
    lsock.close()
    try:
        ready = notify.recv(256).decode()
    except socket.timeout:
        ready = ""
    check("READY=1" in ready, f"sd_notify: READY=1 once serving ({ready!r})")
    rc, out = run(["curl", "-sS", f"http://127.0.0.1:{port}/"])
    check(rc == 0 and "client: 127.0.0.1:" in out, "the inherited socket (LISTEN_FDS) is served")
    os.killpg(p.pid, signal.SIGTERM)
    try:
        stopping = notify.recv(256).decode()
    except socket.timeout:
        stopping = ""
    check("STOPPING=1" in stopping, f"sd_notify: STOPPING=1 when draining ({stopping!r})")
    check(p.wait(timeout=15) == 0, "SIGTERM: exit status 0")


def spki_hash(server_cert):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    cert = x509.load_pem_x509_certificate(server_cert.cert_chain_pems[0].bytes())
    der = cert.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def main():
    os.makedirs(WORK, exist_ok=True)
    try:
        ca, server, paths = certs()
        with open(os.path.join(WORK, "spki.txt"), "w") as f:
            f.write(spki_hash(server))
        tls_checks(paths, ca)
        unix_checks()
        nginx_checks(paths)
        activation_checks()
    except Exception as e:  # a failure to even run a check is a failure
        check(False, f"{type(e).__name__}: {e}")
    finally:
        stop_all()
    print(f"transports: {'FAILED: ' + '; '.join(FAILED) if FAILED else 'all checks passed'}")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
