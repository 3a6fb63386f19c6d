#!/usr/bin/env python3
"""A local Google OAuth2 token endpoint and metadata server, for tests.

Listens on 127.0.0.1 only. Python's stdlib has no RSA, so the RS256
signature of each assertion is checked by the openssl command line tool
(run with an argument list, never through a shell).

Endpoints:
  POST /token   JWT-bearer exchange (RFC 7523), like oauth2.googleapis.com:
                checks Content-Type, grant_type, the JWT header (alg RS256,
                typ JWT, kid when --kid is given), the signature against
                --pubkey, and the claims iss (--email), aud (this URL),
                scope (cloud-platform), iat (within 5 min of now) and exp
                (= iat + 3600). Answers
                {"access_token":"tok-N","expires_in":"3599","token_type":"Bearer"}
                with expires_in as a *string* on purpose, or 400
                {"error":"invalid_grant","error_description":"..."}.
  GET  /computeMetadata/v1/instance/service-accounts/default/token
                Only with "Metadata-Flavor: Google" (403 otherwise), like
                the GCE metadata server: {"access_token":"meta-N",
                "expires_in":3599,"token_type":"Bearer"} (a number).
  GET  /count   {"token": requests to /token, "metadata": requests to the
                metadata path (with the header), "rejected": 400/403 given}
  GET  /control?expires_in=S&delay_ms=MS&fail_status=CODE&token_len=N&reset=1
                Change behaviour for later requests: lifetime, a delay
                before answering (to make concurrent callers overlap), a
                forced error status (0 = off), padding of tokens to N bytes;
                reset=1 zeroes the counters (tokens restart at tok-1).
                Answers the current settings.

Usage: token_server.py --pubkey pub.pem --email sa@x --port-file F [--kid K]
                       [--token-prefix P]
--token-prefix puts P- before every token (P-tok-N, P-meta-N): the
integration rig plants such tokens as secrets no log may show.
The chosen port is written to F (atomically) once the server listens.
The server exits by itself when its parent process goes away.
"""
import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
METADATA_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"
BODY_MAX = 64 * 1024
IAT_SKEW_S = 300
JWT_LIFETIME_S = 3600


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.expires_in = 3599
        self.delay_ms = 0
        self.fail_status = 0
        self.token_len = 0
        self.count_token = 0
        self.count_metadata = 0
        self.rejected = 0
        self.issued = 0

    def settings(self):
        return {"expires_in": self.expires_in, "delay_ms": self.delay_ms,
                "fail_status": self.fail_status, "token_len": self.token_len}


def b64url_decode(s):
    if not s or any(c in s for c in "=+/"):
        raise ValueError("not unpadded base64url")
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def verify_rs256(pubkey, signing_input, sig):
    with tempfile.TemporaryDirectory(prefix="token_server.") as d:
        data_path = os.path.join(d, "data")
        sig_path = os.path.join(d, "sig")
        with open(data_path, "wb") as f:
            f.write(signing_input)
        with open(sig_path, "wb") as f:
            f.write(sig)
        r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", pubkey,
                            "-signature", sig_path, data_path],
                           capture_output=True, timeout=30, check=False)
        return r.returncode == 0


def check_assertion(cfg, aud, assertion):
    """Returns None when valid, else the reason."""
    parts = assertion.split(".")
    if len(parts) != 3:
        return "assertion is not a JWS compact serialization"
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
        sig = b64url_decode(parts[2])
    except ValueError as e:
        return "undecodable assertion: %s" % e
    if header.get("alg") != "RS256" or header.get("typ") != "JWT":
        return "header must say alg RS256, typ JWT"
    if cfg.kid is not None and header.get("kid") != cfg.kid:
        return "unknown kid"
    if not verify_rs256(cfg.pubkey, (parts[0] + "." + parts[1]).encode(),
                        sig):
        return "Invalid JWT Signature."
    if claims.get("iss") != cfg.email:
        return "wrong iss"
    if claims.get("aud") != aud:
        return "wrong aud (want %s)" % aud
    if claims.get("scope") != SCOPE:
        return "wrong scope"
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int) or not isinstance(exp, int):
        return "iat/exp must be integers"
    if abs(iat - time.time()) > IAT_SKEW_S:
        return "iat too far from now"
    if exp - iat != JWT_LIFETIME_S:
        return "exp must be iat + %d" % JWT_LIFETIME_S
    return None


class Handler(BaseHTTPRequestHandler):
    server_version = "token_server/1"

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    def reply(self, status, obj=None, text=None):
        body = (json.dumps(obj) if obj is not None else text or "").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if obj is not None
                         else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def state(self):
        return self.server.state

    def delay_and_fail(self):
        """Applies delay; returns True when a forced failure was sent."""
        st = self.state()
        with st.lock:
            delay, fail = st.delay_ms, st.fail_status
        if delay:
            time.sleep(delay / 1000.0)
        if fail:
            self.reply(fail, {"error": "backend_error",
                              "error_description": "injected failure"})
            return True
        return False

    def new_token(self, prefix):
        st = self.state()
        with st.lock:
            st.issued += 1
            tok = "%s-%d" % (prefix, st.issued)
            if self.server.cfg.token_prefix:
                tok = "%s-%s" % (self.server.cfg.token_prefix, tok)
            if st.token_len > len(tok):
                tok += "x" * (st.token_len - len(tok))
            return tok, st.expires_in

    def reject(self, status, obj=None, text=None):
        with self.state().lock:
            self.state().rejected += 1
        self.reply(status, obj, text)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        st = self.state()
        if url.path == "/count":
            with st.lock:
                self.reply(200, {"token": st.count_token,
                                 "metadata": st.count_metadata,
                                 "rejected": st.rejected})
            return
        if url.path == "/control":
            q = urllib.parse.parse_qs(url.query)
            with st.lock:
                for name in ("expires_in", "delay_ms", "fail_status",
                             "token_len"):
                    if name in q:
                        setattr(st, name, int(q[name][0]))
                if q.get("reset") == ["1"]:
                    st.count_token = st.count_metadata = st.rejected = 0
                    st.issued = 0
                self.reply(200, st.settings())
            return
        if url.path == METADATA_PATH:
            if self.headers.get("Metadata-Flavor") != "Google":
                self.reject(403, text="Missing Metadata-Flavor:Google header")
                return
            with st.lock:
                st.count_metadata += 1
            if self.delay_and_fail():
                return
            tok, exp = self.new_token("meta")
            self.reply(200, {"access_token": tok, "expires_in": exp,
                             "token_type": "Bearer"})
            return
        self.reply(404, {"error": "not_found"})

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/token":
            self.reply(404, {"error": "not_found"})
            return
        n = int(self.headers.get("Content-Length") or 0)
        if n > BODY_MAX:
            self.reply(413, {"error": "too_large"})
            return
        body = self.rfile.read(n).decode("ascii", "replace")
        st = self.state()
        with st.lock:
            st.count_token += 1
        if self.delay_and_fail():
            return
        ctype = self.headers.get("Content-Type", "")
        form = urllib.parse.parse_qs(body, keep_blank_values=True)
        reason = None
        if ctype.split(";")[0].strip() != "application/x-www-form-urlencoded":
            reason = "bad Content-Type"
        elif form.get("grant_type") != [GRANT_TYPE]:
            reason = "bad grant_type"
        elif len(form.get("assertion", [])) != 1:
            reason = "missing assertion"
        else:
            aud = "http://127.0.0.1:%d/token" % self.server.server_port
            reason = check_assertion(self.server.cfg, aud,
                                     form["assertion"][0])
        if reason:
            self.reject(400, {"error": "invalid_grant",
                              "error_description": reason})
            return
        tok, exp = self.new_token("tok")
        self.reply(200, {"access_token": tok, "expires_in": str(exp),
                         "token_type": "Bearer"})


def exit_with_parent(ppid):
    """A crashed test cannot kill us: leave when our parent is gone."""
    while os.getppid() == ppid:
        time.sleep(0.5)
    os._exit(0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pubkey", required=True, help="PEM public key")
    ap.add_argument("--email", required=True, help="expected iss")
    ap.add_argument("--kid", help="expected kid (unchecked when absent)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--token-prefix", default="",
                    help="put PREFIX- before every token issued")
    cfg = ap.parse_args()

    threading.Thread(target=exit_with_parent, args=(os.getppid(),),
                     daemon=True).start()
    srv = ThreadingHTTPServer(("127.0.0.1", cfg.port), Handler)
    srv.daemon_threads = True
    srv.cfg = cfg
    srv.state = State()
    tmp = cfg.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_port)
    os.replace(tmp, cfg.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
