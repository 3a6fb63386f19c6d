#!/usr/bin/env python3
"""gcs_lite: the part of the Cloud Storage JSON API runpool uses, in memory,
with every operation O(log n) in the bucket's objects. For scale benches
only (bench scenario d: 60,000+ objects); the tests use fake-gcs-server.

Why: fake-gcs-server's memory backend scans every object of the bucket on
each request (a put took 1.4 ms at 300 objects, 6.7-8.3 ms at 3,000), and
its filesystem backend walks the whole bucket on each list (61 ms at 3,000
objects), so 10,000 executions (about 11 requests and 5 objects each)
would cost it hours of CPU.

Served (exactly what store/rp_state_gs.c, the executor and the Cloud Run
fake's simulated images send; anything else is a 400 or 404):
  POST   /storage/v1/b                       {"name": B}: create a bucket
  GET    /storage/v1/b/B/o/NAME?alt=media    bytes; X-Goog-Generation
  GET    /storage/v1/b/B/o/NAME[?fields=..]  the Object resource
  POST   /upload/storage/v1/b/B/o?uploadType=media&name=NAME
         [&ifGenerationMatch=G]              the Object resource
  DELETE /storage/v1/b/B/o/NAME[?ifGenerationMatch=G]   204
  GET    /storage/v1/b/B/o?prefix=&pageToken=&maxResults=&fields=
                                             {"items": [...], "nextPageToken"}
  GET    /_lite/stats                        requests so far, by kind (not
                                             Google's: for the bench)
Preconditions as Google's: ifGenerationMatch=0 means "does not exist";
a failed one is 412 conditionNotMet; a missing object 404. Generations are
increasing integers (strings in JSON, as the API writes int64). `fields`
is ignored (the whole resource comes back, which partial-response readers
accept).

    python3 tests/fakes/gcs_lite.py --port-file F [--bucket B]...

It also starts as fake-gcs-server would (`-port N`; its other flags are
ignored; GET /_internal/healthcheck answers 200), so
RP_FAKE_GCS=tests/fakes/gcs_lite.py runs tests/fakes/start-fake-gcs, and
test_state_gs (the store's contract suite) against it.
"""

import argparse
import bisect
import http.server
import json
import os
import signal
import sys
import threading
import time
import urllib.parse

MAX_OBJECT = 64 * 1024 * 1024


def err(code, reason, message):
    return code, {"error": {"code": code, "message": message,
                            "errors": [{"message": message, "domain": "global",
                                        "reason": reason}]}}


class Store:
    def __init__(self):
        self.lock = threading.Lock()
        self.buckets = {}   # name -> {"objs": {name: (gen, bytes, t)}, "names": sorted list}
        self.gen = int(time.time() * 1e6)
        self.requests = {}  # GET /_lite/stats: upload, media, list, get, delete

    def resource(self, b, name, gen, data, t):
        return {"kind": "storage#object", "id": f"{b}/{name}/{gen}", "name": name,
                "bucket": b, "generation": str(gen), "metageneration": "1",
                "contentType": "application/octet-stream", "size": str(len(data)),
                "timeCreated": t, "updated": t}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    store = None

    def log_message(self, fmt, *args):
        pass

    def _reply(self, code, obj=None, body=None, headers=()):
        if obj is not None:
            body = json.dumps(obj).encode()
        body = body or b""
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        if obj is not None:
            self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_OBJECT:
            raise ValueError("too large")
        return self.rfile.read(n) if n else b""

    def _route(self):
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
        parts = u.path.split("/")
        return u.path, parts, q

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_DELETE(self):
        self._handle("DELETE")

    def _handle(self, method):
        try:
            body = self._body()
        except ValueError:
            return self._reply(*err(413, "uploadTooLarge", "Payload too large."))
        path, parts, q = self._route()
        st = self.store
        # /storage/v1/b  |  /storage/v1/b/B/o[/NAME]  |  /upload/storage/v1/b/B/o
        if path == "/_internal/healthcheck" and method == "GET":
            return self._reply(200, body=b"OK")
        if path == "/_lite/stats" and method == "GET":
            with st.lock:
                return self._reply(200, {"requests": dict(st.requests)})
        kind = ("upload" if path.startswith("/upload/") else
                "list" if method == "GET" and path.endswith("/o") else
                "media" if q.get("alt") == "media" else method.lower())
        with st.lock:
            st.requests[kind] = st.requests.get(kind, 0) + 1
        if path == "/storage/v1/b" and method == "POST":
            try:
                name = json.loads(body or b"{}")["name"]
            except (ValueError, KeyError, TypeError):
                return self._reply(*err(400, "invalid", "Bad bucket."))
            with st.lock:
                st.buckets.setdefault(name, {"objs": {}, "names": []})
            return self._reply(200, {"kind": "storage#bucket", "name": name, "id": name})
        up = path.startswith("/upload/storage/v1/b/")
        if up:
            parts = parts[1:]
        if len(parts) < 6 or parts[1:4] != ["storage", "v1", "b"] or parts[5] != "o":
            return self._reply(*err(404, "notFound", "Not Found"))
        bname = urllib.parse.unquote(parts[4])
        oname = urllib.parse.unquote("/".join(parts[6:])) if len(parts) > 6 else None
        with st.lock:
            b = st.buckets.get(bname)
            if b is None:
                return self._reply(*err(404, "notFound", "The specified bucket does not exist."))
            cond = q.get("ifGenerationMatch")
            if cond is not None and not cond.isdigit():
                return self._reply(*err(400, "invalid", "Invalid ifGenerationMatch."))
            if up and method == "POST":
                if q.get("uploadType") != "media" or not q.get("name"):
                    return self._reply(*err(400, "invalid", "Only uploadType=media with name."))
                name = q["name"]
                cur = b["objs"].get(name)
                if cond is not None and (cur[0] if cur else 0) != int(cond):
                    return self._reply(*err(412, "conditionNotMet",
                                            "At least one of the pre-conditions you specified did not hold."))
                st.gen += 1
                t = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
                if cur is None:
                    bisect.insort(b["names"], name)
                b["objs"][name] = (st.gen, body, t)
                return self._reply(200, st.resource(bname, name, st.gen, body, t))
            if oname is None and method == "GET":
                prefix = q.get("prefix", "")
                try:
                    limit = max(1, min(1000, int(q.get("maxResults") or 1000)))
                except ValueError:
                    return self._reply(*err(400, "invalid", "Invalid maxResults."))
                start = q.get("pageToken") or prefix
                names = b["names"]
                i = bisect.bisect_left(names, start)
                if q.get("pageToken"):
                    i = bisect.bisect_right(names, start)
                items = []
                while i < len(names) and names[i].startswith(prefix) and len(items) < limit:
                    g, d, t = b["objs"][names[i]]
                    items.append(st.resource(bname, names[i], g, d, t))
                    i += 1
                out = {"kind": "storage#objects"}
                if items:
                    out["items"] = items
                if i < len(names) and names[i].startswith(prefix) and items:
                    out["nextPageToken"] = items[-1]["name"]
                return self._reply(200, out)
            if oname is None:
                return self._reply(*err(404, "notFound", "Not Found"))
            cur = b["objs"].get(oname)
            if cur is None:
                return self._reply(*err(404, "notFound", f"No such object: {bname}/{oname}"))
            if cond is not None and cur[0] != int(cond):
                return self._reply(*err(412, "conditionNotMet",
                                        "At least one of the pre-conditions you specified did not hold."))
            if method == "DELETE":
                del b["objs"][oname]
                i = bisect.bisect_left(b["names"], oname)
                del b["names"][i]
                return self._reply(204)
            if method == "GET":
                g, d, t = cur
                if q.get("alt") == "media":
                    return self._reply(200, body=d, headers=(
                        ("Content-Type", "application/octet-stream"),
                        ("X-Goog-Generation", str(g)), ("X-Goog-Metageneration", "1")))
                return self._reply(200, st.resource(bname, oname, g, d, t))
        return self._reply(*err(405, "invalid", "Method not allowed."))


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], add_help=False,
                                 allow_abbrev=False)
    ap.add_argument("--port", "-port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--bucket", action="append", default=[])
    a, _ = ap.parse_known_args()   # fake-gcs-server's other flags: ignored
    Handler.store = Store()
    for bk in a.bucket:
        Handler.store.buckets[bk] = {"objs": {}, "names": []}
    srv = Server(("127.0.0.1", a.port), Handler)
    url = f"http://127.0.0.1:{srv.server_address[1]}"
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as f:
            f.write(url + "\n")
        os.replace(a.port_file + ".tmp", a.port_file)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())
    srv.serve_forever(poll_interval=0.2)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
