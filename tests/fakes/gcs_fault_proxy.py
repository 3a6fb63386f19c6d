#!/usr/bin/env python3
"""gcs_fault_proxy - an HTTP proxy in front of fake-gcs-server that behaves
like Cloud Storage under load: it throttles writes to one object name and
injects the faults Google's clients are told to expect.

    gcs_fault_proxy.py --upstream http://127.0.0.1:PORT [--port 0]
        [--port-file FILE] [--object-write-interval-ms 1000]
        [--lost-reply-every N] [--error-after-every N] [--error-status 503]
        [--burst-429 PERIOD_S:LEN_S] [--burst-429-offset-s S]
        [--faults-after-s S] [--log FILE]

The code under test is pointed at the proxy as it would be at Google
(STORAGE_EMULATOR_HOST or the endpoint): nothing tells it apart from a
Cloud Storage that answers 429 and drops connections. Python stdlib only.

What it does to a *write* (an object mutation: media/multipart upload
POST /upload/storage/v1/b/B/o?name=..., DELETE/PATCH/PUT
/storage/v1/b/B/o/NAME, rewrite/compose), in this order:

  1. --burst-429 P:L  -- during the first L seconds of every P seconds
     (counted from the start plus --burst-429-offset-s) every write gets
     429 without being forwarded (Cloud Storage sends 429 before acting).
  2. Per-object rate: a write to a name whose last *accepted* write was
     less than --object-write-interval-ms ago gets Cloud Storage's real
     429 body (reason rateLimitExceeded, "The object B/NAME exceeded the
     rate limit for object mutation operations (create, update, and
     delete) ..."), not forwarded. Cloud Storage documents about one write
     per second per object name; 0 turns this off.
  3. --lost-reply-every N -- every N-th accepted write is forwarded, its
     reply read from upstream, and then the client connection is closed
     without any answer (the write happened; the caller cannot know).
  4. --error-after-every N -- every N-th accepted write (not one already
     chosen by 3) is forwarded and then answered --error-status (503 by
     default, or 500/502/504) with a Google error body: a 5xx after the
     action.

Reads (GET, list) are forwarded untouched. --faults-after-s S holds 1, 3
and 4 back for the first S seconds (bucket set-up, warm-up); the rate limit
applies from the start.

GET /_proxy/stats answers JSON counts (writes, forwarded, throttled_429,
burst_429, lost_replies, errors_after, by status, and by_call: every
request by API call and object kind, e.g. "insert attempt-N.json",
"get state.json", "list attempt" -- the object's last name segment with
digit runs as N; that is how the suite counts a client's Cloud Storage
calls per execution). It is for the test harness only; the code under
test never calls it.

On start it writes its base URL (http://127.0.0.1:PORT) to --port-file
(or stdout) once it listens, and it exits when its parent process goes
away (a crashed test must not leave it behind).
"""
import argparse
import http.client
import http.server
import json
import os
import re
import socket
import sys
import threading
import time
import urllib.parse

HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding",
       "te", "trailer", "upgrade", "content-length"}
BODY_MAX = 128 << 20
REASON = {429: "Too Many Requests", 500: "Internal Server Error",
          502: "Bad Gateway", 503: "Service Unavailable",
          504: "Gateway Timeout"}


def gcs_error(code, message, reason, domain="global"):
    """Cloud Storage's JSON API error shape."""
    return json.dumps({"error": {"code": code, "message": message,
                                 "errors": [{"message": message,
                                             "domain": domain,
                                             "reason": reason}]}}).encode()


def rate_limit_body(bucket, name):
    msg = (f"The object {bucket}/{name} exceeded the rate limit for object "
           "mutation operations (create, update, and delete). Please reduce "
           "your request rate. See https://cloud.google.com/storage/docs/gcs429.")
    return gcs_error(429, msg, "rateLimitExceeded", "usageLimits")


def object_of(method, path, query):
    """(bucket, name) of a write, or None for a read."""
    parts = path.split("/")
    q = urllib.parse.parse_qs(query, keep_blank_values=True)
    # /upload/storage/v1/b/B/o?uploadType=...&name=N
    if method == "POST" and len(parts) >= 7 and parts[1] == "upload" and \
            parts[4] == "b" and parts[6] == "o":
        name = q.get("name", [""])[-1]
        return (urllib.parse.unquote(parts[5]), name or "?multipart")
    # /storage/v1/b/B/o/N[/rewriteTo/...|/compose]
    if len(parts) >= 7 and parts[1] == "storage" and parts[3] == "b" and \
            parts[5] == "o":
        bucket = urllib.parse.unquote(parts[4])
        name = urllib.parse.unquote(parts[6])
        if method in ("DELETE", "PATCH", "PUT"):
            return (bucket, name)
        if method == "POST" and len(parts) >= 8:
            # compose writes N; rewriteTo writes the destination
            if parts[7] == "compose":
                return (bucket, name)
            # .../o/SRC/rewriteTo/b/DB/o/DST
            if parts[7] == "rewriteTo" and len(parts) >= 12:
                return (urllib.parse.unquote(parts[9]),
                        urllib.parse.unquote(parts[11]))
            return (bucket, name)
    return None


def call_of(method, path, query):
    """'insert state.json', 'get result.json', 'list attempt', ...: the JSON
    API call and the kind of object (its last name segment, digits as N)."""
    parts = path.split("/")
    q = urllib.parse.parse_qs(query, keep_blank_values=True)
    name, op = "", "other"
    if len(parts) >= 7 and parts[1] == "upload" and parts[6] == "o":
        name, op = q.get("name", [""])[-1], "insert"
    elif len(parts) >= 7 and parts[1] == "storage" and parts[5] == "o":
        name = urllib.parse.unquote(parts[6])
        op = {"GET": "get" if q.get("alt", [""])[-1] == "media" else "get_meta",
              "DELETE": "delete", "PATCH": "patch", "PUT": "update",
              "POST": "rewrite"}.get(method, method.lower())
    elif len(parts) == 6 and parts[1] == "storage" and parts[5] == "o" and \
            method == "GET":
        name, op = q.get("prefix", [""])[-1], "list"
    kind = re.sub(r"[0-9]+", "N", name.rsplit("/", 1)[-1]) if name else "-"
    return f"{op} {kind}"


class Proxy:
    def __init__(self, a):
        self.a = a
        u = urllib.parse.urlsplit(a.upstream)
        if u.scheme != "http" or not u.hostname:
            raise SystemExit("gcs_fault_proxy: --upstream must be http://host:port")
        self.up_host, self.up_port = u.hostname, u.port or 80
        self.t0 = time.monotonic()
        self.lock = threading.Lock()
        self.last_write = {}      # (bucket, name) -> monotonic s of the last accepted write
        self.accepted = 0         # accepted writes, for the every-N schedules
        self.stats = {"requests": 0, "writes": 0, "forwarded_writes": 0,
                      "throttled_429": 0, "burst_429": 0, "lost_replies": 0,
                      "errors_after": 0, "by_status": {}, "by_call": {}}
        burst = (a.burst_429 or "0:0").split(":")
        self.burst_period, self.burst_len = float(burst[0]), float(burst[1])
        self.log_f = open(a.log, "a", buffering=1) if a.log else None

    def log(self, msg):
        if self.log_f:
            self.log_f.write(f"{time.time():.3f} {msg}\n")

    def bump(self, key, status=None):
        with self.lock:
            if key:
                self.stats[key] += 1
            if status is not None:
                k = str(status)
                self.stats["by_status"][k] = self.stats["by_status"].get(k, 0) + 1

    def decide(self, obj):
        """For a write: '429burst', '429', 'lost', 'error' or 'ok'."""
        now = time.monotonic()
        el = now - self.t0
        faults_on = el >= self.a.faults_after_s
        with self.lock:
            self.stats["writes"] += 1
            if faults_on and self.burst_period > 0:
                ph = (el - self.a.burst_429_offset_s) % self.burst_period
                if el >= self.a.burst_429_offset_s and ph < self.burst_len:
                    self.stats["burst_429"] += 1
                    return "429burst"
            iv = self.a.object_write_interval_ms / 1000.0
            last = self.last_write.get(obj)
            if iv > 0 and last is not None and now - last < iv:
                self.stats["throttled_429"] += 1
                return "429"
            self.last_write[obj] = now
            if len(self.last_write) > 100000:   # bound: forget the oldest
                for k in list(self.last_write)[:50000]:
                    del self.last_write[k]
            self.accepted += 1
            n = self.accepted
            if faults_on and self.a.lost_reply_every and n % self.a.lost_reply_every == 0:
                self.stats["lost_replies"] += 1
                return "lost"
            if faults_on and self.a.error_after_every and n % self.a.error_after_every == 0:
                self.stats["errors_after"] += 1
                return "error"
            return "ok"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    proxy = None

    def log_message(self, fmt, *args):
        pass

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                if len(out) + size > BODY_MAX:
                    raise ValueError("body too large")
                out += self.rfile.read(size)
                self.rfile.readline(1024)
        n = int(self.headers.get("Content-Length") or 0)
        if n > BODY_MAX:
            raise ValueError("body too large")
        return self.rfile.read(n) if n else b""

    def _reply(self, status, body, headers=()):
        self.send_response(status, REASON.get(status))
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.proxy.bump(None, status)

    def _forward(self, body):
        c = http.client.HTTPConnection(self.proxy.up_host, self.proxy.up_port,
                                       timeout=60)
        try:
            hdrs = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
            hdrs["Content-Length"] = str(len(body))
            c.request(self.command, self.path, body=body, headers=hdrs)
            r = c.getresponse()
            data = r.read()
            return r.status, [(k, v) for k, v in r.getheaders()
                              if k.lower() not in HOP], data
        finally:
            c.close()

    def _drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.proxy.bump(None, "drop")

    def _handle(self):
        p = self.proxy
        try:
            body = self._body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        u = urllib.parse.urlsplit(self.path)
        if u.path == "/_proxy/stats":
            with p.lock:
                data = json.dumps(p.stats).encode()
            self._reply(200, data, [("Content-Type", "application/json")])
            return
        p.bump("requests")
        call = call_of(self.command, u.path, u.query)
        with p.lock:
            p.stats["by_call"][call] = p.stats["by_call"].get(call, 0) + 1
        obj = object_of(self.command, u.path, u.query)
        what = p.decide(obj) if obj else "ok"
        if what in ("429", "429burst"):
            p.log(f"{what} {self.command} {obj[0]}/{obj[1]}")
            body429 = rate_limit_body(*obj) if what == "429" else gcs_error(
                429, "The rate of change requests to the bucket is too high "
                     "(injected burst).", "rateLimitExceeded", "usageLimits")
            self._reply(429, body429, [("Content-Type",
                                        "application/json; charset=UTF-8")])
            return
        try:
            status, hdrs, data = self._forward(body)
        except OSError as e:
            p.log(f"upstream {self.command} {self.path}: {e}")
            self._reply(502, gcs_error(502, f"upstream: {e}", "backendError"))
            return
        if obj:
            p.bump("forwarded_writes")
        if what == "lost":
            p.log(f"lost reply {self.command} {obj[0]}/{obj[1]} (upstream {status})")
            self._drop()
            return
        if what == "error":
            st = p.a.error_status
            p.log(f"{st} after {self.command} {obj[0]}/{obj[1]} (upstream {status})")
            self._reply(st, gcs_error(st, "Backend Error (injected after the "
                                          "write)", "backendError"),
                        [("Content-Type", "application/json; charset=UTF-8")])
            return
        self._reply(status, data, hdrs)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def watch_parent(ppid):
    while True:
        time.sleep(0.5)
        if os.getppid() != ppid:
            os._exit(0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--upstream", required=True,
                    help="fake-gcs-server base URL (http://127.0.0.1:PORT)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--object-write-interval-ms", type=int, default=1000)
    ap.add_argument("--lost-reply-every", type=int, default=0)
    ap.add_argument("--error-after-every", type=int, default=0)
    ap.add_argument("--error-status", type=int, default=503,
                    choices=(500, 502, 503, 504))
    ap.add_argument("--burst-429", metavar="PERIOD_S:LEN_S")
    ap.add_argument("--burst-429-offset-s", type=float, default=0.0)
    ap.add_argument("--faults-after-s", type=float, default=0.0)
    ap.add_argument("--log")
    ap.add_argument("--no-parent-watch", action="store_true")
    a = ap.parse_args()
    if a.burst_429:
        try:
            per, ln = (float(x) for x in a.burst_429.split(":"))
            if per <= 0 or not 0 <= ln < per:
                raise ValueError
        except ValueError:
            ap.error("--burst-429 wants PERIOD_S:LEN_S with 0 <= LEN < PERIOD")
    Handler.proxy = Proxy(a)
    srv = Server(("127.0.0.1", a.port), Handler)
    url = f"http://127.0.0.1:{srv.server_address[1]}"
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(url + "\n")
        os.replace(tmp, a.port_file)
    else:
        print(url, flush=True)
    if not a.no_parent_watch:
        threading.Thread(target=watch_parent, args=(os.getppid(),),
                         daemon=True).start()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
