#!/usr/bin/env python3
"""The driver of .ci/bench (run that, not this): starts idpool and the machine references,
drives them with wrk over loopback, prints Markdown tables and appends JSON lines. A benchmark:
it measures and reports, it asserts nothing. Python 3 standard library only.

Knobs (environment; .ci/bench documents them): DURATION, CONNS, BENCH_ONLY, BENCH_BIG_N,
BENCH_BIG_SECS, BENCH_BUDGET, BENCH_PG, BENCH_PG_URL, BENCH_PG_CONNS, BENCH_OUT, IDPOOL_BIN,
BENCHKIT_BIN (the folder holding the bare, rs512, fsync and sqlpage helpers).
"""

import datetime
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

T0 = time.monotonic()
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# --- knobs -----------------------------------------------------------------------------------


def parse_secs(s):
    m = re.fullmatch(r"\s*([0-9.]+)\s*(ms|s|m)?\s*", s)
    if not m:
        sys.exit(f"bench: cannot read a duration from {s!r} (e.g. 5s, 1m)")
    v = float(m.group(1))
    return {"ms": v / 1000, "m": v * 60}.get(m.group(2) or "s", v)


DURATION = parse_secs(os.environ.get("DURATION", "5s"))
CONNS = [int(c) for c in os.environ.get("CONNS", "1 16 64").split()]
PG_CONNS = [int(c) for c in os.environ.get("BENCH_PG_CONNS", " ".join(map(str, CONNS))).split()]
ONLY = os.environ.get("BENCH_ONLY", "").split()
BIG_N = int(os.environ.get("BENCH_BIG_N", "1000000"))
BIG_SECS = parse_secs(os.environ["BENCH_BIG_SECS"]) if os.environ.get("BENCH_BIG_SECS") else None
BUDGET = float(os.environ.get("BENCH_BUDGET", "840"))
PG_ON = os.environ.get("BENCH_PG", "1") != "0"
PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/idpool_bench")
OUT = os.environ.get("BENCH_OUT", os.path.join(ROOT, "target", "bench", "results.jsonl"))
IDPOOL = os.path.abspath(os.environ.get("IDPOOL_BIN", os.path.join(ROOT, "target", "release", "idpool")))
KIT = os.path.abspath(os.environ.get("BENCHKIT_BIN", os.path.join(ROOT, "target", "benchkit", "release")))
KNOWN_N = 10_000  # pre-linked logins of the per-engine pool
STARTS = 5  # start-ups timed on the big pool

ENGINES = ["sqlite", "pg1", "pg2", "sqlite-1m"]
REFERENCES = ["bare", "rs512", "fsync"]
SCENARIOS = ["health", "known", "describe", "list", "openid", "creds", "new", "guest"]
BIG_PARTS = ["startup", "known", "openid"]
for word in ONLY:
    if word not in ENGINES + REFERENCES + SCENARIOS + BIG_PARTS:
        sys.exit(f"bench: BENCH_ONLY: unknown name {word!r} "
                 f"(engines {ENGINES + REFERENCES}, scenarios {SCENARIOS + BIG_PARTS})")
ONLY_ENGINES = [w for w in ONLY if w in ENGINES + REFERENCES]
ONLY_SCENARIOS = [w for w in ONLY if w in SCENARIOS + BIG_PARTS]


def engine_selected(e):
    return not ONLY_ENGINES or e in ONLY_ENGINES


def scenario_selected(s):
    return not ONLY_SCENARIOS or s in ONLY_SCENARIOS


RUN = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
try:
    COMMIT = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short=12", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    if subprocess.run(["git", "-C", ROOT, "diff", "--quiet", "HEAD", "--", "src", "migrations",
                       "Cargo.toml", "Cargo.lock"]).returncode != 0:
        COMMIT += "+dirty"
except OSError:
    COMMIT = "unknown"
CLK_TCK = os.sysconf("SC_CLK_TCK")
WORK = tempfile.mkdtemp(prefix="idpool-bench-")
ADMIN_KEY = ("AKIDBENCHADMIN000001", "bench-admin-secret-not-for-anything-else")
REGION = "us-east-1"
PROVIDER = "accounts.google.com"
warnings = []
results = []  # every figure of this run, as written to OUT


def elapsed():
    return time.monotonic() - T0


def say(*a):
    print(*a, flush=True)


def over_budget(part):
    if elapsed() > BUDGET:
        say(f"BUDGET: {elapsed():.0f}s elapsed > BENCH_BUDGET={BUDGET:.0f}s: {part} not measured")
        return True
    return False


def record(**fig):
    line = {"run": RUN, "commit": COMMIT, **fig}
    results.append(line)
    os.makedirs(os.path.dirname(OUT) or ".", exist_ok=True)
    with open(OUT, "a") as f:
        f.write(json.dumps(line) + "\n")


# --- processes -------------------------------------------------------------------------------

procs = []


def proc_cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


def machine_ticks():
    """(steal, all) jiffies of the whole machine: time the hypervisor gave to someone else."""
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:9]]
    return cpu[7], sum(cpu)


def proc_status(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024  # kB -> MB
    except OSError:
        pass
    return None


def wait_listening(p, out_path, timeout=30.0):
    """The URL from a `listening on URL` line, and the seconds from `p`'s spawn to it."""
    start = p.spawned
    while time.monotonic() - start < timeout:
        with open(out_path) as f:
            m = re.search(r"listening on (\S+)", f.read())
        if m:
            return m.group(1), time.monotonic() - start
        if p.poll() is not None:
            break
        time.sleep(0.001)
    err = open(out_path.replace(".out", ".err")).read()[-2000:]
    raise RuntimeError(f"{p.args[0]} did not say `listening` (exit {p.poll()}):\n{err}")


def spawn(name, argv, env=None):
    out, err = open(f"{WORK}/{name}.out", "w"), open(f"{WORK}/{name}.err", "w")
    t = time.monotonic()
    p = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=WORK)
    p.spawned = t
    procs.append(p)
    url, took = wait_listening(p, f"{WORK}/{name}.out")
    p.url, p.startup = url, took
    p.hostport = url.split("://", 1)[1].rstrip("/")
    return p


def stop(*ps):
    for p in ps:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in ps:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        if p in procs:
            procs.remove(p)


def idpool_config(name, database):
    path = f"{WORK}/{name}.toml"
    with open(path, "w") as f:
        f.write(f"""listen = "127.0.0.1:0"
region = "{REGION}"
[database]
{database}
[tokens]
issuer = "https://bench.example.test"
[admin]
# Admin calls are verified (allow_unsigned would skip SigV4 altogether).
allow_unsigned = false
[[admin.keys]]
access_key_id = "{ADMIN_KEY[0]}"
secret_access_key = "{ADMIN_KEY[1]}"
[providers]
default = "trust"
[credentials]
source = "local"
""")
    return path


def start_idpool(name, database):
    # Default logging, as users run it; its output goes to files in the work folder.
    return spawn(name, [IDPOOL, "--config", idpool_config(name, database)])


# --- requests --------------------------------------------------------------------------------


def sigv4_headers(hostport, op, body, when=None):
    """Headers of a SigV4-signed (AWS4-HMAC-SHA256) request, as the AWS SDKs build them."""
    when = when or datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = when.strftime("%Y%m%dT%H%M%SZ"), when.strftime("%Y%m%d")
    headers = {
        "content-type": "application/x-amz-json-1.1",
        "host": hostport,
        "x-amz-date": amz_date,
        "x-amz-target": f"AWSCognitoIdentityService.{op}",
    }
    signed = ";".join(sorted(headers))
    creq = "\n".join(["POST", "/", ""] + [f"{k}:{headers[k]}" for k in sorted(headers)]
                     + ["", signed, hashlib.sha256(body.encode()).hexdigest()])
    scope = f"{day}/{REGION}/cognito-identity/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
    key = ("AWS4" + ADMIN_KEY[1]).encode()
    for part in (day, REGION, "cognito-identity", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={ADMIN_KEY[0]}/{scope}, "
                                f"SignedHeaders={signed}, Signature={sig}")
    return headers


def plain_headers(hostport, op):
    return {"content-type": "application/x-amz-json-1.1", "host": hostport,
            "x-amz-target": f"AWSCognitoIdentityService.{op}"}


class Client:
    """One keep-alive connection."""

    def __init__(self, hostport):
        self.hostport = hostport
        self.conn = http.client.HTTPConnection(hostport, timeout=30)

    def call(self, op, payload, signed=False):
        body = json.dumps(payload)
        h = sigv4_headers(self.hostport, op, body) if signed else plain_headers(self.hostport, op)
        self.conn.request("POST", "/", body=body.encode(), headers=h)
        r = self.conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError(f"{op} answered {r.status}: {data[:300]!r}")
        return json.loads(data)


def populate(hostport, pool, prefix, n, threads=8):
    """Links logins prefix1..prefixN (GetId through the API, several connections); the ids."""
    ids = [None] * (n + 1)
    errors = []

    def work(k):
        c = Client(hostport)
        try:
            for i in range(1 + k, n + 1, threads):
                ids[i] = c.call("GetId", {"IdentityPoolId": pool,
                                          "Logins": {PROVIDER: f"{prefix}{i}"}})["IdentityId"]
        except Exception as e:  # noqa: BLE001 - reported, not raised from a thread
            errors.append(e)

    ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]
    return ids


def setup_pool(hostport):
    c = Client(hostport)
    pool = c.call("CreateIdentityPool", {
        "IdentityPoolName": "bench", "AllowUnauthenticatedIdentities": True,
        "SupportedLoginProviders": {PROVIDER: "bench-client"}}, signed=True)["IdentityPoolId"]
    c.call("SetIdentityPoolRoles", {"IdentityPoolId": pool, "Roles": {
        "authenticated": "arn:aws:iam::000000000000:role/bench-authenticated",
        "unauthenticated": "arn:aws:iam::000000000000:role/bench-unauthenticated"}},
        signed=True)
    return pool


# --- wrk -------------------------------------------------------------------------------------

# Every script ends with this done(): one JSON line with wrk's exact figures (microseconds).
LUA_DONE = r"""
local threads = 0
setup = function(thread) thread:set("tid", threads); threads = threads + 1 end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\nBENCHJSON {"requests":%d,"duration_us":%d,"non2xx":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, latency.mean))
end
"""


def lua_str(s):
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def wrk_name(k):
    # wrk.format adds its own `Host` unless the table has that exact key: a second Host header
    # would break the signature.
    return "Host" if k == "host" else k


def lua_headers(h):
    h = {wrk_name(k): v for k, v in h.items()}
    return "{" + ", ".join(f"[{lua_str(k)}] = {lua_str(v)}" for k, v in h.items()) + "}"


def script_static(name, headers, body):
    """One fixed request, replayed (wrk builds it once)."""
    lines = ['wrk.method = "POST"', f"wrk.body = {lua_str(body)}"]
    lines += [f"wrk.headers[{lua_str(wrk_name(k))}] = {lua_str(v)}" for k, v in headers.items()]
    return write_script(name, "\n".join(lines))


def script_known(name, hostport, pool, prefix, n, fmt="%d"):
    """GetId for a random one of the logins prefix1..prefixN."""
    h = lua_headers(plain_headers(hostport, "GetId"))
    head = lua_str('{"IdentityPoolId":"' + pool + '","Logins":{"' + PROVIDER + '":"' + prefix)
    if n <= 100_000:  # prebuilt requests: wrk's own cost per request stays a table lookup
        body = f"""
local reqs = {{}}
local n = {n}
init = function(args)
  math.randomseed(os.time() * 1000 + wrk.thread:get("tid"))
  for i = 1, n do
    reqs[i] = wrk.format("POST", "/", {h}, {head} .. string.format("{fmt}", i) .. '"}}}}')
  end
end
request = function() return reqs[math.random(1, n)] end
"""
    else:
        body = f"""
local n = {n}
local headers = {h}
init = function(args) math.randomseed(os.time() * 1000 + wrk.thread:get("tid")) end
request = function()
  return wrk.format("POST", "/", headers, {head} .. string.format("{fmt}", math.random(1, n)) .. '"}}}}')
end
"""
    return write_script(name, body)


def script_new(name, hostport, pool):
    """GetId with a login never seen before, each request."""
    h = lua_headers(plain_headers(hostport, "GetId"))
    head = lua_str('{"IdentityPoolId":"' + pool + '","Logins":{"' + PROVIDER + '":"new-')
    return write_script(name, f"""
local counter = 0
local tag = 0
local headers = {h}
init = function(args)
  math.randomseed(os.time() * 1000 + wrk.thread:get("tid"))
  tag = math.random(1, 1000000000)
end
request = function()
  counter = counter + 1
  return wrk.format("POST", "/", headers, {head} .. tag .. "-" .. counter .. '"}}}}')
end
""")


def write_script(name, body):
    path = f"{WORK}/{name}.lua"
    with open(path, "w") as f:
        f.write(body + "\n" + LUA_DONE)
    return path


def wrk(url, conns, secs, script, tag):
    threads = 1 if conns < 2 else 2
    # wrk takes whole seconds only.
    argv = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{max(1, round(secs))}s", "--timeout", "10s",
            "--latency", "-s", script, url.rstrip("/") + "/"]
    out_path = f"{WORK}/wrk-{tag}.txt"
    return subprocess.Popen(argv, stdout=open(out_path, "w"), stderr=subprocess.STDOUT), out_path


def wrk_result(p, out_path):
    p.wait()
    text = open(out_path).read()
    m = re.search(r"^BENCHJSON (.*)$", text, re.M)
    if not m:
        raise RuntimeError(f"wrk gave no figures:\n{text[-1500:]}")
    return json.loads(m.group(1))


def measure(servers, scripts, conns, secs, tag):
    """Runs wrk against each server (conns split evenly) at once; the figures, summed."""
    n = len(servers)
    share = [conns // n + (1 if i < conns % n else 0) for i in range(n)]
    share = [max(1, s) for s in share]
    before = [proc_cpu_ticks(s.pid) for s in servers]
    steal0, all0 = machine_ticks()
    t = time.monotonic()
    running = [wrk(s.url, c, secs, sc, f"{tag}-{i}")
               for i, (s, c, sc) in enumerate(zip(servers, share, scripts))]
    figs = [wrk_result(*r) for r in running]
    wall = time.monotonic() - t
    ticks = sum(proc_cpu_ticks(s.pid) - b for s, b in zip(servers, before))
    steal1, all1 = machine_ticks()
    reqs = sum(f["requests"] for f in figs)
    rps = sum(f["requests"] / (f["duration_us"] / 1e6) for f in figs)
    return {
        "conns_used": sum(share),  # two replicas at 1 connection: one each
        "requests": reqs,
        "rps": round(rps, 1),
        # With several servers: the slowest one's percentile (a conservative reading).
        "p50_ms": max(f["p50_us"] for f in figs) / 1000,
        "p99_ms": max(f["p99_us"] for f in figs) / 1000,
        "max_ms": max(f["max_us"] for f in figs) / 1000,
        "cpu_us_per_req": round(ticks / CLK_TCK * 1e6 / reqs, 1) if reqs else None,
        "server_cpu_s": round(ticks / CLK_TCK, 2),
        "wall_s": round(wall, 2),
        "rss_mb": round(sum(proc_status(s.pid, "VmRSS") or 0 for s in servers), 1),
        # The share of the cores' time the hypervisor gave to other guests meanwhile: when it
        # is more than a few %, every latency of this row (bare's too) carries those stalls.
        "steal_pct": round(100 * (steal1 - steal0) / max(1, all1 - all0), 1),
        # Each replica's own rate: a lopsided pair (one cold, one warm) shows here.
        "rps_each": [round(f["requests"] / (f["duration_us"] / 1e6), 1) for f in figs],
        "non2xx": sum(f["non2xx"] for f in figs),
        "socket_errors": sum(f["connect"] + f["read"] + f["write"] + f["timeout"] for f in figs),
    }


def check(engine, scenario, conns, fig):
    each = fig["rps_each"]
    if len(each) > 1 and min(each) * 2 < max(each):
        w = (f"WARNING: {engine} {scenario} c={conns}: the replicas served "
             f"{' / '.join(f'{r:,.0f}' for r in each)} req/s: one of them was held back")
        warnings.append(w)
        say(w)
    if fig["non2xx"] or fig["socket_errors"]:
        w = (f"WARNING: {engine} {scenario} c={conns}: {fig['non2xx']} non-2xx answers, "
             f"{fig['socket_errors']} socket errors of {fig['requests']} requests")
        warnings.append(w)
        say(w)


# --- output ----------------------------------------------------------------------------------

bare_rps = {}  # conns -> req/s of the bare server
bare_p99 = {}  # conns -> its p99 in ms
bare_sign_rps = {}  # conns -> req/s of the bare server signing a token a request
bare_page_rps = {}  # conns -> req/s of the bare server answering a ListIdentities page


def fmt(v, spec):
    return "–" if v is None else format(v, spec)


def row(scenario, conns, fig):
    xb = fig["rps"] / bare_rps[conns] if bare_rps.get(conns) else None
    fig["x_bare"] = round(xb, 3) if xb is not None else None
    return (f"| {scenario} | {conns} | {fig['rps']:,.0f} | {fmt(xb, '.2f')} | "
            f"{fig['p50_ms']:.2f} | {fig['p99_ms']:.2f} | {fig['max_ms']:.1f} | "
            f"{fmt(fig['cpu_us_per_req'], '.0f')} | {fig['rss_mb']:.1f} | {fig['steal_pct']:.1f} |")


TABLE_HEAD = ("| scenario | conns | req/s | ×bare | p50 ms | p99 ms | max ms | CPU µs/req | RSS MB "
              "| steal % |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


# --- parts -----------------------------------------------------------------------------------

def run_bare():
    if not (engine_selected("bare") or any(engine_selected(e) for e in ENGINES)):
        return
    if over_budget("bare"):
        return
    say("\n## bare (hyper 1 + tokio answering GetId's bytes: the ceiling on this machine)\n")
    p = spawn("bare", [f"{KIT}/bare"])
    # The same wrk request as `known` (random among 10,000 logins; the answer never varies).
    script = script_known("bare-known", p.hostport, f"{REGION}:00000000-0000-4000-8000-000000000000",
                          "user-", KNOWN_N)
    say(TABLE_HEAD)
    for c in CONNS:
        fig = measure([p], [script], c, DURATION, f"bare-{c}")
        bare_rps[c] = fig["rps"]
        bare_p99[c] = fig["p99_ms"]
        say(row("known", c, fig))
        check("bare", "known", c, fig)
        record(engine="bare", scenario="known", conns=c, **fig)
    stop(p)
    notes = []
    if scenario_selected("list"):
        # What an answer the size of a ListIdentities page costs over HTTP here.
        bare_mode("page", "ListIdentities", "{}", bare_page_rps)
        notes.append("page = the same server answering a fixed 60-identity ListIdentities page "
                     "(~9.9 KB).")
    if scenario_selected("openid") or scenario_selected("creds"):
        # What a token endpoint can reach here over HTTP: the same server signing one RS512
        # token a request on its worker, as idpool does, with wrk on the same cores.
        bare_mode("sign", "GetOpenIdToken",
                  '{"IdentityId":"us-east-1:11a86fa8-fc2c-46da-a38b-e46762e447ed"}', bare_sign_rps)
        notes.append("sign = the same server answering with a fresh RS512 token a request "
                     "(aws-lc-rs, RSA 2048, signed on the serving worker).")
    if notes:
        say("\n" + "\n".join(notes))


def bare_mode(mode, op, body, rates):
    """The bare server in one of its other modes, at each CONNS; req/s into `rates`."""
    p = spawn(f"bare-{mode}", [f"{KIT}/bare", mode])
    script = script_static(f"bare-{mode}", plain_headers(p.hostport, op), body)
    for c in CONNS:
        fig = measure([p], [script], c, DURATION, f"bare-{mode}-{c}")
        rates[c] = fig["rps"]
        say(row(mode, c, fig))
        check("bare", mode, c, fig)
        record(engine="bare", scenario=mode, conns=c, **fig)
    stop(p)


rs512 = {}


def run_rs512():
    wanted = engine_selected("rs512") or (
        any(engine_selected(e) for e in ENGINES) and
        (scenario_selected("openid") or scenario_selected("creds")))
    if not wanted or over_budget("rs512"):
        return
    say("\n## rs512 (raw RS512 signing, RSA 2048, aws-lc-rs; no server)\n")
    out = subprocess.run([f"{KIT}/rs512", "2", "2"], capture_output=True, text=True, check=True)
    say("| method | threads | signatures/s |\n|---|---:|---:|")
    for line in out.stdout.splitlines():
        _, method, threads, rate = line.split()
        threads = int(threads.split("=")[1])
        rs512[(method, threads)] = float(rate)
        say(f"| {method} | {threads} | {float(rate):,.0f} |")
        record(engine="rs512", scenario=method, threads=threads, signatures_per_s=float(rate))
    say("\njwt = jsonwebtoken 11 `encode` (aws_lc_rs; parses the key each call); "
        "keypair = aws-lc-rs RsaKeyPair::sign on a parsed key, as src/tokens.rs signs.")


def helper_line(line):
    """A helper's `name [word] key=value ...` line: the word (or None) and the numbers."""
    words = line.split()[1:]
    word = words[0] if words and "=" not in words[0] else None
    return word, {k: float(v) for k, v in (w.split("=") for w in words if "=" in w)}


fsync = {}


def run_fsync():
    wanted = engine_selected("fsync") or (
        any(engine_selected(e) for e in ENGINES) and
        (scenario_selected("new") or scenario_selected("guest")))
    if not wanted or over_budget("fsync"):
        return
    say("\n## fsync (a WAL-sized write and fsync, one after another, on the work folder's disk; "
        "no server)\n")
    out = subprocess.run([f"{KIT}/fsync", WORK, "2"], capture_output=True, text=True, check=True)
    say("| mode | commits/s | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|")
    for line in out.stdout.splitlines():
        mode, fig = helper_line(line)
        fsync[mode] = fig
        say(f"| {mode} | {fig['commits_per_s']:,.0f} | {fig['p50_ms']:.2f} | {fig['p99_ms']:.2f} "
            f"| {fig['max_ms']:.1f} |")
        record(engine="fsync", scenario=mode, **fig)
    say("\nalone = nothing else writes; beside = while another file takes 1 MiB and an fsync "
        "every 500 ms, as a checkpoint does. The floor one connection's durable write waits for.")


def floors(engine, rows):
    """A durable write at one connection beside what the disk and the machine allow."""
    for sc in ("new", "guest"):
        fig = rows.get((sc, 1))
        if not fig:
            continue
        parts = [f"p99 {fig['p99_ms']:.2f} ms, max {fig['max_ms']:.1f} ms"]
        if "alone" in fsync:
            parts.append(f"fsync alone p99 {fsync['alone']['p99_ms']:.2f} ms, "
                         f"max {fsync['alone']['max_ms']:.1f} ms")
        bare = bare_p99.get(1)
        if bare is not None:
            parts.append(f"bare p99 {bare:.2f} ms")
        parts.append(f"steal {fig['steal_pct']:.1f}%")
        say(f"- {engine} {sc} c=1: " + "; ".join(parts))


def list_floor(rows):
    """ListIdentities beside its page statement run alone on the file just measured."""
    out = subprocess.run([f"{KIT}/sqlpage", f"{WORK}/sqlite.db", "2"], capture_output=True,
                         text=True, check=True)
    alone = {}  # threads -> (pages/s, µs a page)
    for line in out.stdout.splitlines():
        _, fig = helper_line(line)
        alone[int(fig["threads"])] = (fig["pages_per_s"], fig["us_per_page"])
        record(engine="sqlpage", scenario="list", **fig)
    for (sc, c), fig in sorted(rows.items()):
        if sc != "list":
            continue
        parts = [f"{fig['rps']:,.0f} req/s"]
        if 2 in alone:
            parts.append(f"its statement alone, 2 threads, no HTTP: {alone[2][0]:,.0f} pages/s"
                         + (f" ({alone[2][0] / bare_rps[c]:.2f}× bare)" if bare_rps.get(c) else ""))
        if 1 in alone:
            parts.append(f"{alone[1][1]:.0f} µs a page on one thread")
        if bare_page_rps.get(c):
            parts.append(f"bare page {bare_page_rps[c]:,.0f}/s")
        say(f"- sqlite list c={c}: " + "; ".join(parts))


def scenario_scripts(server, pool, ids):
    """name -> (function of a server giving its wrk script)."""
    one = ids[1]
    known_login = {PROVIDER: "user-1"}

    def signed(op, payload):
        def make(s):
            body = json.dumps(payload, separators=(",", ":"))
            return script_static(f"{op}-{s.hostport.replace(':', '_')}",
                                 sigv4_headers(s.hostport, op, body), body)
        return make

    def public(op, payload):
        def make(s):
            body = json.dumps(payload, separators=(",", ":"))
            return script_static(f"{op}-{s.hostport.replace(':', '_')}",
                                 plain_headers(s.hostport, op), body)
        return make

    return {
        "known": lambda s: script_known(f"known-{s.pid}", s.hostport, pool, "user-", KNOWN_N),
        "describe": signed("DescribeIdentityPool", {"IdentityPoolId": pool}),
        "list": signed("ListIdentities", {"IdentityPoolId": pool, "MaxResults": 60}),
        "openid": public("GetOpenIdToken", {"IdentityId": one, "Logins": known_login}),
        "creds": public("GetCredentialsForIdentity", {"IdentityId": one, "Logins": known_login}),
        "new": lambda s: script_new(f"new-{s.pid}", s.hostport, pool),
        "guest": public("GetId", {"IdentityPoolId": pool}),
        # The server's own HTTP path with no operation behind it: the floor of every request.
        "health": lambda s: write_script(f"health-{s.pid}", 'wrk.method = "GET"\nwrk.path = "/health"'),
    }


def run_engine(engine, servers, conns_list):
    """The scenarios against one or more replicas (setup through the first)."""
    t = time.monotonic()
    pool = setup_pool(servers[0].hostport)
    ids = populate(servers[0].hostport, pool, "user-", KNOWN_N)
    say(f"setup: pool and {KNOWN_N:,} linked logins in {time.monotonic() - t:.1f}s")
    record(engine=engine, scenario="setup", logins=KNOWN_N, seconds=round(time.monotonic() - t, 2))
    makers = scenario_scripts(servers[0], pool, ids)
    if len(servers) > 1 and scenario_selected("known"):
        # The logins went in through the first replica, whose cache holds them; `known` measures
        # the cached read path, so the others read them once first (not measured).
        t = time.monotonic()
        for s in servers[1:]:
            wrk_result(*wrk(s.url, 16, 3, makers["known"](s), f"{engine}-warmup-{s.pid}"))
        say(f"warm-up: `known` for 3 s on each replica past the first "
            f"({time.monotonic() - t:.1f}s)")
    say("\n" + TABLE_HEAD)
    rows = {}
    for sc in SCENARIOS:
        if not scenario_selected(sc):
            continue
        for c in conns_list:
            if over_budget(f"{engine} {sc} c={c}"):
                return rows
            # Signed requests are signed now, well within the 15-minute skew they are replayed in.
            scripts = [makers[sc](s) for s in servers]
            fig = measure(servers, scripts, c, DURATION, f"{engine}-{sc}-{c}")
            say(row(sc, c, fig))
            check(engine, sc, c, fig)
            record(engine=engine, scenario=sc, conns=c, replicas=len(servers), **fig)
            rows[(sc, c)] = fig
    return rows


def ratios(engine, rows):
    ref = rs512.get(("jwt", 2)), rs512.get(("keypair", 2))
    if not any(ref):
        return
    for sc in ("openid", "creds"):
        for (s, c), fig in sorted(rows.items()):
            if s != sc:
                continue
            parts = []
            for name, r in zip(("jwt", "keypair"), ref):
                if r:
                    parts.append(f"{fig['rps'] / r:.2f}× rs512 {name} 2-thread ({r:,.0f}/s)")
            sign = bare_sign_rps.get(c)
            if sign:
                parts.append(f"{fig['rps'] / sign:.2f}× bare sign ({sign:,.0f}/s)")
            say(f"- {engine} {sc} c={c}: {fig['rps']:,.0f} req/s = " + ", ".join(parts))
            record(engine=engine, scenario=f"{sc}-vs-rs512", conns=c,
                   ratio_jwt=round(fig["rps"] / ref[0], 3) if ref[0] else None,
                   ratio_keypair=round(fig["rps"] / ref[1], 3) if ref[1] else None,
                   ratio_bare_sign=round(fig["rps"] / sign, 3) if sign else None)


def run_sqlite():
    if not engine_selected("sqlite") or over_budget("sqlite"):
        return
    say("\n## sqlite (fresh database file, synchronous = full)\n")
    s = start_idpool("sqlite", f'path = "{WORK}/sqlite.db"')
    try:
        rows = run_engine("sqlite", [s], CONNS)
        known_rps.update({c: f["rps"] for (sc, c), f in rows.items() if sc == "known"})
    finally:
        stop(s)
    say("")
    ratios("sqlite", rows)
    floors("sqlite", rows)
    if any(sc == "list" for sc, _ in rows):
        list_floor(rows)


def pg_available():
    if not PG_ON:
        return "BENCH_PG=0"
    if not shutil.which("psql") or not shutil.which("pg_isready"):
        return "no psql/pg_isready"
    hp = re.match(r"postgres(?:ql)?://(?:[^@/]*@)?([^:/?]+)(?::(\d+))?", PG_URL)
    host, port = (hp.group(1), hp.group(2) or "5432") if hp else ("127.0.0.1", "5432")
    if subprocess.run(["pg_isready", "-q", "-h", host, "-p", port]).returncode != 0:
        return f"pg_isready: no server on {host}:{port}"
    return None


def fresh_pg():
    db = PG_URL.rsplit("/", 1)[1].split("?")[0]
    admin = PG_URL.rsplit("/", 1)[0] + "/postgres"
    subprocess.run(["psql", "-q", "-X", "-v", "ON_ERROR_STOP=1", admin,
                    "-c", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)',
                    "-c", f'CREATE DATABASE "{db}"'], check=True, capture_output=True)


def run_pg():
    wanted = [e for e in ("pg1", "pg2") if engine_selected(e)]
    if not wanted:
        return
    why = pg_available()
    if why:
        for e in wanted:
            say(f"\n## {e}: not measured ({why})")
            record(engine=e, scenario="skipped", reason=why)
        return
    for e in wanted:
        if over_budget(e):
            return
        n = 1 if e == "pg1" else 2
        say(f"\n## {e} (PostgreSQL, {n} replica{'s' if n > 1 else ''} on one fresh database"
            f"{', half the connections to each, summed' if n > 1 else ''})\n")
        fresh_pg()
        servers = []
        try:
            for i in range(n):
                servers.append(start_idpool(f"{e}-{i}", f'url = "{PG_URL}"'))
            rows = run_engine(e, servers, PG_CONNS)
        finally:
            stop(*servers)
        say("")
        ratios(e, rows)
        floors(e, rows)


def fill_big(db, pool, n):
    """n identities, each with login big-0000001…, straight into the file, as the server writes
    them: UUID v7 ids (RFC 9562: 48-bit Unix milliseconds, version 7, a counter within the
    millisecond, variant 10, random bits) in creation order, times as 'YYYY-MM-DD HH:MM:SS.SSS'
    UTC. Generated by SQLite itself (a recursive CTE), so a million take seconds."""
    c = sqlite3.connect(db, isolation_level=None)
    # One big transaction: a rollback journal (only the few pages that existed) instead of the
    # WAL (every page twice), a cache that holds the indexes; WAL again when done.
    c.execute("PRAGMA journal_mode = DELETE")
    c.execute("PRAGMA synchronous = OFF")
    c.execute("PRAGMA cache_size = -300000")
    c.execute("BEGIN")
    base = c.execute("SELECT coalesce(max(seq), 0) FROM identities").fetchone()[0]
    start_ms = int(time.time() * 1000) - n // 100 - 1000  # 100 a millisecond, ending just now
    c.execute("""
        INSERT INTO identities (id, pool_id, created_at, updated_at)
        WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < :n),
        t(i, ms) AS (SELECT i, :start + i / 100 FROM s)
        SELECT :region || ':' || printf('%08x-%04x-7%03x-', ms >> 16, ms & 65535, i % 100)
                 || substr('89ab', 1 + abs(random()) % 4, 1)
                 || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6))),
               :pool,
               strftime('%Y-%m-%d %H:%M:%f', ms / 1000.0, 'unixepoch'),
               strftime('%Y-%m-%d %H:%M:%f', ms / 1000.0, 'unixepoch')
          FROM t""", {"n": n, "start": start_ms, "region": REGION, "pool": pool})
    c.execute("""
        INSERT INTO logins (pool_id, provider, subject, identity_id, linked_at)
        SELECT pool_id, :provider, printf('big-%07d', seq - :base), id, created_at
          FROM identities WHERE seq > :base ORDER BY seq""",
              {"provider": PROVIDER, "base": base})
    c.execute("COMMIT")
    c.execute("PRAGMA journal_mode = WAL")
    first = c.execute("SELECT identity_id FROM logins WHERE pool_id = ? AND provider = ? "
                      "AND subject = 'big-0000001'", (pool, PROVIDER)).fetchone()[0]
    c.close()
    return first


known_rps = {}  # conns -> sqlite known req/s, to size the big run


def big_secs(conns):
    """BENCH_BIG_SECS, or long enough for ~1M requests (min(N, 1M)) at the rate sqlite's known
    GetId reached at these connections, within 10 to 60 seconds."""
    if BIG_SECS is not None:
        return BIG_SECS
    rate = known_rps.get(conns)
    if not rate:
        return 25.0
    return max(10.0, min(60.0, min(BIG_N, 1_000_000) / rate))


def run_big():
    name = "sqlite-1m"  # whatever BENCH_BIG_N is; its figures carry `identities`
    if not engine_selected("sqlite-1m") or over_budget(name):
        return
    if not any(scenario_selected(p) for p in BIG_PARTS):
        return
    say(f"\n## {name} (SQLite, one pool of {BIG_N:,} identities with one login each, "
        f"BENCH_BIG_N)\n")
    db = f"{WORK}/big.db"
    s = start_idpool("big-0", f'path = "{db}"')
    pool = setup_pool(s.hostport)
    stop(s)
    t = time.monotonic()
    first = fill_big(db, pool, BIG_N)
    took = time.monotonic() - t
    size = os.path.getsize(db) / 2**20
    say(f"populated in {took:.1f}s (rows generated by SQLite itself), file {size:.0f} MB")
    record(engine=name, scenario="populate", identities=BIG_N, seconds=round(took, 2),
           db_mb=round(size, 1))
    if scenario_selected("startup"):
        times = []
        for k in range(STARTS):
            s = start_idpool(f"big-start{k}", f'path = "{db}"')
            times.append(s.startup * 1000)
            rss0 = proc_status(s.pid, "VmRSS")
            stop(s)
        med = statistics.median(times)
        say(f"start-up to `listening`: median {med:.0f} ms of {STARTS} "
            f"({', '.join(f'{x:.0f}' for x in times)}); RSS at start {rss0:.1f} MB")
        record(engine=name, scenario="startup", starts=STARTS, median_ms=round(med, 1),
               all_ms=[round(x, 1) for x in times], rss_start_mb=round(rss0, 1))
    s = start_idpool("big", f'path = "{db}"')
    try:
        rss_start = proc_status(s.pid, "VmRSS")
        one = Client(s.hostport).call("GetId", {"IdentityPoolId": pool,
                                                "Logins": {PROVIDER: "big-0000001"}})["IdentityId"]
        if one != first:
            say(f"WARNING: GetId for big-0000001 answered {one}, not the inserted {first}")
            warnings.append("big pool: GetId did not find an inserted login")
        say("\n" + TABLE_HEAD)
        c = max(CONNS)
        if scenario_selected("known") and not over_budget(f"{name} known"):
            sc = script_known("big-known", s.hostport, pool, "big-", BIG_N, "%07d")
            fig = measure([s], [sc], c, big_secs(c), "big-known")
            fig["hwm_mb"] = proc_status(s.pid, "VmHWM")
            fig["rss_start_mb"] = rss_start
            say(row("known", c, fig))
            check(name, "known", c, fig)
            record(engine=name, scenario="known", conns=c, identities=BIG_N, **fig)
        if scenario_selected("openid") and not over_budget(f"{name} openid"):
            body = json.dumps({"IdentityId": one, "Logins": {PROVIDER: "big-0000001"}},
                              separators=(",", ":"))
            sc = script_static("big-openid", plain_headers(s.hostport, "GetOpenIdToken"), body)
            fig = measure([s], [sc], c, DURATION, "big-openid")
            say(row("openid", c, fig))
            check(name, "openid", c, fig)
            record(engine=name, scenario="openid", conns=c, identities=BIG_N, **fig)
        hwm = proc_status(s.pid, "VmHWM")
        say(f"\nRSS: {rss_start:.1f} MB at start, {proc_status(s.pid, 'VmRSS'):.1f} MB after, "
            f"VmHWM {hwm:.1f} MB")
    finally:
        stop(s)


def main():
    say(f"# idpool bench — {RUN}, commit {COMMIT}, {os.cpu_count()} CPUs, DURATION={DURATION:g}s, "
        f"CONNS={' '.join(map(str, CONNS))}, server {IDPOOL}")
    say(f"(figures move from run to run: compare within one run; wrk shares the cores)")
    try:
        for part in (run_bare, run_rs512, run_fsync, run_sqlite, run_pg, run_big):
            try:
                part()
            except Exception as e:  # noqa: BLE001 - one part failing leaves the others
                w = f"WARNING: {part.__name__[4:]} stopped, the rest of it not measured: {e}"
                warnings.append(w.splitlines()[0])
                say(w)
                for p in list(procs):
                    stop(p)
    finally:
        for p in list(procs):
            stop(p)
        if os.environ.get("BENCH_KEEP") != "1":
            shutil.rmtree(WORK, ignore_errors=True)
        else:
            say(f"work folder kept: {WORK}")
    say("")
    for w in warnings:
        say(w)
    say(f"figures appended to {OUT}")
    say(f"total elapsed: {elapsed():.0f}s")


if __name__ == "__main__":
    main()
