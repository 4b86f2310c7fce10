"""Shared by .ci/fuzz-soak and .ci/crash-loop: start the release binary on loopback in a temp dir,
a small keep-alive HTTP/1.1 client that notices dropped connections, and AWS SigV4 signing with
the development key of config.example.toml. Standard library only."""

import atexit
import datetime
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("SOAK_BIN") or os.path.join(ROOT, "target", "release", "idpool")
MODEL = os.path.join(ROOT, "src", "protocol", "cognito-identity-2014-06-30.model.json")
PREFIX = "AWSCognitoIdentityService."
REGION = "us-east-1"
SERVICE = "cognito-identity"


def operations():
    """The 23 operations of the service model, with their auth ("none" for the public ones)."""
    with open(MODEL) as f:
        model = json.load(f)
    return {name: op.get("authtype", "v4") for name, op in model["operations"].items()}


def dev_key():
    with open(os.path.join(ROOT, "config.example.toml"), "rb") as f:
        key = tomllib.load(f)["admin"]["keys"][0]
    return key["access_key_id"], key["secret_access_key"]


def build_release():
    if os.environ.get("SOAK_NO_BUILD") != "1":
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    if not os.path.exists(BIN):
        sys.exit(f"no binary at {BIN}")


# ---------------------------------------------------------------------------------------------
# The server process.
# ---------------------------------------------------------------------------------------------

_children = []


def _kill_children():
    for owner, p in _children:
        if owner == os.getpid() and p.poll() is None:
            try:
                p.kill()
                p.wait(5)
            except Exception:
                pass


atexit.register(_kill_children)


def _on_signal(signum, _frame):
    _kill_children()
    if _children and _children[0][0] != os.getpid():
        os._exit(128 + signum)  # a forked worker: leave the parent's server alone
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


class Server:
    """One run of target/release/idpool on 127.0.0.1:<free port>, logging into `log`."""

    def __init__(self, workdir, db, log, synchronous="full"):
        access, secret = dev_key()
        self.config = os.path.join(workdir, "soak.toml")
        with open(self.config, "w") as f:
            f.write(
                f'listen = "127.0.0.1:0"\n'
                f"[database]\npath = {json.dumps(db)}\nsynchronous = \"{synchronous}\"\n"
                f"[admin]\nallow_unsigned = false\n"
                f"[[admin.keys]]\naccess_key_id = {json.dumps(access)}\n"
                f"secret_access_key = {json.dumps(secret)}\n"
                f'[providers]\ndefault = "trust"\n'
            )
        self.out = os.path.join(workdir, "stdout")
        self.log = log
        with open(self.out, "wb") as out, open(log, "ab") as err:
            self.proc = subprocess.Popen(
                [BIN, "--config", self.config], stdout=out, stderr=err, stdin=subprocess.DEVNULL
            )
        _children.append((os.getpid(), self.proc))
        deadline = time.monotonic() + 30
        while True:
            with open(self.out) as f:
                line = f.readline()
            if line.startswith("listening on http://") and line.endswith("\n"):
                host, port = line.strip()[len("listening on http://"):].rsplit(":", 1)
                assert host == "127.0.0.1", line
                self.port = int(port)
                break
            if self.proc.poll() is not None:
                sys.exit(f"idpool exited with {self.proc.returncode} at start; see {log}")
            if time.monotonic() > deadline:
                sys.exit(f"idpool did not say where it listens within 30 s; see {log}")
            time.sleep(0.02)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout=30):
        """SIGTERM and wait; returns the exit code (None if it had to be killed)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


def panics(log):
    with open(log, "rb") as f:
        return [l.decode("utf-8", "replace").rstrip() for l in f if b"panicked" in l]


def integrity_check(db, read_only=False):
    import sqlite3

    uri = f"file:{db}?mode=ro" if read_only else f"file:{db}"
    c = sqlite3.connect(uri, uri=True, timeout=30)
    try:
        rows = [r[0] for r in c.execute("PRAGMA integrity_check")]
    finally:
        c.close()
    return rows


# ---------------------------------------------------------------------------------------------
# SigV4.
# ---------------------------------------------------------------------------------------------


def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


class Signer:
    def __init__(self, access, secret):
        self.access, self.secret = access, secret
        self._day, self._key = None, None

    def key(self, day):
        if day != self._day:
            k = _hmac(("AWS4" + self.secret).encode(), day)
            for part in (REGION, SERVICE, "aws4_request"):
                k = _hmac(k, part)
            self._day, self._key = day, k
        return self._key

    def headers(self, host, target, body, content_type="application/x-amz-json-1.1", when=None):
        """The signed header list (name, value) for a POST / of `body`."""
        now = when or datetime.datetime.now(datetime.timezone.utc)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        day = amz_date[:8]
        hs = [("content-type", content_type), ("host", host), ("x-amz-date", amz_date), ("x-amz-target", target)]
        names = ";".join(n for n, _ in hs)
        canonical = "POST\n/\n\n" + "".join(f"{n}:{v}\n" for n, v in hs) + "\n" + names + "\n" + hashlib.sha256(body).hexdigest()
        scope = f"{day}/{REGION}/{SERVICE}/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        sig = hmac.new(self.key(day), to_sign.encode(), hashlib.sha256).hexdigest()
        auth = f"AWS4-HMAC-SHA256 Credential={self.access}/{scope}, SignedHeaders={names}, Signature={sig}"
        return [("Content-Type", content_type), ("X-Amz-Date", amz_date), ("X-Amz-Target", target), ("Authorization", auth)]


# ---------------------------------------------------------------------------------------------
# A keep-alive HTTP/1.1 connection.
# ---------------------------------------------------------------------------------------------


class Dropped(Exception):
    """The server closed or reset the connection instead of answering."""


class Conn:
    def __init__(self, port, timeout=60):
        self.port = port
        self.host = f"127.0.0.1:{port}"
        self.timeout = timeout
        self.sock = None
        self.closed_by_server = False

    def _connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.buf = s, b""

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def request(self, headers, body, method="POST", path="/"):
        """Sends one request on the kept-alive connection (opening one if there is none) and
        returns (status, {lowercase header: value}, body). Raises Dropped when the connection
        ends without a complete answer; after an answer with `Connection: close` the next call
        opens a new connection and `closed_by_server` is set."""
        if self.sock is None:
            self._connect()
        self.closed_by_server = False
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
        head += "".join(f"{n}: {v}\r\n" for n, v in headers)
        head += f"Content-Length: {len(body)}\r\n\r\n"
        try:
            self.sock.sendall(head.encode("latin-1") + body)
            status, hs, data = self._read()
        except (ConnectionError, BrokenPipeError, socket.timeout, OSError) as e:
            self.close()
            raise Dropped(f"{type(e).__name__}: {e}") from None
        if hs.get("connection", "").lower() == "close":
            self.closed_by_server = True
            self.close()
        return status, hs, data

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("end of stream before a complete answer")
        self.buf += chunk

    def _read(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        hs = {}
        for l in lines[1:]:
            n, _, v = l.partition(":")
            hs[n.strip().lower()] = v.strip()
        if "content-length" in hs:
            n = int(hs["content-length"])
            while len(self.buf) < n:
                self._fill()
            data, self.buf = self.buf[:n], self.buf[n:]
        elif hs.get("transfer-encoding", "").lower() == "chunked":
            data = b""
            while True:
                while b"\r\n" not in self.buf:
                    self._fill()
                size_line, self.buf = self.buf.split(b"\r\n", 1)
                size = int(size_line.split(b";")[0], 16)
                while len(self.buf) < size + 2:
                    self._fill()
                data += self.buf[:size]
                self.buf = self.buf[size + 2:]
                if size == 0:
                    break
        else:
            data = b""
        return status, hs, data


class Client:
    """JSON calls on one connection, signing admin operations."""

    def __init__(self, port, signer, ops):
        self.conn = Conn(port)
        self.signer = signer
        self.ops = ops

    def call(self, op, payload):
        body = json.dumps(payload).encode()
        target = PREFIX + op
        if self.ops.get(op) == "none":
            hs = [("Content-Type", "application/x-amz-json-1.1"), ("X-Amz-Target", target)]
        else:
            hs = self.signer.headers(self.conn.host, target, body)
        status, _, data = self.conn.request(hs, body)
        return status, (json.loads(data) if data else None)
