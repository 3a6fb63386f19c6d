"""Simulated images for cloudrun_fake: a task attempt that is not a process.

An image listed in the fake's `simulated_images` config runs no container
process. The fake does what runpool-executor does for a command that takes
`duration_ms` and prints `stdout`, through the Cloud Storage JSON API (the
emulator at STORAGE_EMULATOR_HOST), with the same requests in the same
order (executor/executor_main.c):

  1. GET  executions/{EXECUTION_ID}/result.json   there already: exit 0
  2. GET  RUNPOOL_REQUEST_REF (the request document), when it is a key
  3. GET  sessions/{SESSION_ID}/state.json        absent = a new session
  4. POST executions/{EXECUTION_ID}/claim.json    create-only
                                                  (ifGenerationMatch=0); a
                                                  claim of another run: exit 3
  5. after duration_ms (a timer of the fake's loop, not a thread):
     POST executions/{EXECUTION_ID}/result.json   create-only: the record
                                                  (schemas/executor-result),
                                                  env and cwd = the session's
                                                  (a command that changes
                                                  neither); exit 0

So the worker sees exactly what a real container would have left: the
claim (`cloudrun:{CLOUD_RUN_EXECUTION}`, job, attempt), the record, the
task's exit code. Storage requests go through a small pool of threads with
keep-alive connections (SIM_THREADS), so 10,000 executions in flight cost
10,000 timers and no threads or processes of their own.

A duration past the request's TIMEOUT ends as the executor ends a command
it stops at its timeout: at TIMEOUT s, a "timed_out" record with exit code
143 (the shell's TERM trap) and the session's cwd and env (the capture ran).

Differences from the real executor, on purpose: the command is never run
(its text is read and ignored; the outcome is the image's simulation).
A Storage failure (other than 404 / 412 where the executor expects them)
ends the attempt with exit 1 and no record, where the executor would try
to leave an "error" record.

Thread-safety: SimRunner.start may be called from any thread; on_exit is
called from a pool thread or the loop thread, never with a lock of ours.
"""

import datetime
import http.client
import json
import os
import queue
import threading
import time
import urllib.parse

SIM_THREADS = 8
# A session state or request document the simulation reads is at most this
# (the executor's RP_STATE_DOC_MAX / RP_JOBENV_REQUEST_DOC_MAX: 4 MiB).
DOC_MAX = 4 * 1024 * 1024
CONTRACT_VARS = ("EXECUTION_ID", "SESSION_ID", "COMMAND", "TIMEOUT", "COMMAND_ENV")
EXIT_RECORDED, EXIT_FAILED, EXIT_CONTRACT, EXIT_CLAIMED = 0, 1, 2, 3


def check_spec(img, spec):
    """A simulated_images entry: {"duration_ms": N, "exit_code": 0,
    "stdout": "", "stderr": ""} (all optional). Returns it normalised."""
    if not isinstance(spec, dict):
        raise ValueError(f"simulated_images[{img!r}] is a JSON object")
    extra = set(spec) - {"duration_ms", "exit_code", "stdout", "stderr"}
    if extra:
        raise ValueError(f"simulated_images[{img!r}]: unknown keys {sorted(extra)}")
    out = {"duration_ms": spec.get("duration_ms", 0), "exit_code": spec.get("exit_code", 0),
           "stdout": spec.get("stdout", ""), "stderr": spec.get("stderr", "")}
    if not isinstance(out["duration_ms"], int) or not 0 <= out["duration_ms"] <= 86400000:
        raise ValueError(f"simulated_images[{img!r}].duration_ms: 0..86400000")
    if not isinstance(out["exit_code"], int) or not 0 <= out["exit_code"] <= 255:
        raise ValueError(f"simulated_images[{img!r}].exit_code: 0..255")
    if not isinstance(out["stdout"], str) or not isinstance(out["stderr"], str):
        raise ValueError(f"simulated_images[{img!r}]: stdout and stderr are strings")
    return out


def rfc3339_ms(t):
    """rp_time_rfc3339: UTC, milliseconds, 'Z'."""
    d = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


class StorageError(Exception):
    pass


class _Gcs:
    """One keep-alive connection to the Storage emulator (one pool thread)."""

    def __init__(self, base):
        u = urllib.parse.urlsplit(base if "://" in base else "http://" + base)
        self.host, self.port = u.hostname, u.port or 80
        self.conn = None
        self.generation = ""   # X-Goog-Generation of the last reply

    def request(self, method, path, body=None):
        for attempt in (0, 1):   # one retry on a connection the server closed
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                headers = {"Content-Type": "application/json"} if body is not None else {}
                self.conn.request(method, path, body=body, headers=headers)
                r = self.conn.getresponse()
                data = r.read(DOC_MAX + 1)
                self.generation = r.getheader("X-Goog-Generation", "")
                if r.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return r.status, data
            except (OSError, http.client.HTTPException) as e:
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                if attempt:
                    raise StorageError(f"{method} {path}: {e}") from e
        raise StorageError("unreachable")


class _Store:
    """gs://BUCKET[/PREFIX] through one _Gcs (as store/rp_state_gs.c)."""

    def __init__(self, gcs, url):
        if not url.startswith("gs://"):
            raise StorageError(f"RUNPOOL_STATE_URL '{url}' is not gs://")
        bucket, _, prefix = url[5:].partition("/")
        self.gcs, self.bucket, self.prefix = gcs, bucket, prefix.strip("/")

    def _name(self, key):
        return urllib.parse.quote(f"{self.prefix}/{key}" if self.prefix else key, safe="")

    def get(self, key):
        """bytes, or None when absent."""
        return self.get_versioned(key)[0]

    def get_versioned(self, key):
        """(bytes, generation as a decimal string); (None, "0") when absent."""
        st, data = self.gcs.request(
            "GET", f"/storage/v1/b/{self.bucket}/o/{self._name(key)}?alt=media")
        if st == 404:
            return None, "0"
        if st != 200 or len(data) > DOC_MAX:
            raise StorageError(f"GET {key}: HTTP {st}")
        gen = self.gcs.generation
        if not gen.isdigit():
            raise StorageError(f"GET {key}: no X-Goog-Generation in the reply")
        return data, gen

    def create(self, key, data):
        """True when created, False when the object exists (412)."""
        st, _ = self.gcs.request(
            "POST", f"/upload/storage/v1/b/{self.bucket}/o?uploadType=media"
                    f"&name={self._name(key)}&ifGenerationMatch=0", body=data)
        if st == 412:
            return False
        if st != 200:
            raise StorageError(f"POST {key}: HTTP {st}")
        return True


class SimRunner:
    """Runs simulated task attempts. loop: the fake's Loop (call_later);
    log: the fake's log function."""

    def __init__(self, loop, log, threads=SIM_THREADS):
        self.loop, self.log = loop, log
        self.q = queue.SimpleQueue()
        self.local = threading.local()
        self.lock = threading.Lock()
        self.in_flight = 0
        self.started = 0
        self.records = 0
        for i in range(threads):
            threading.Thread(target=self._work, name=f"sim-{i}", daemon=True).start()

    def _work(self):
        while True:
            fn = self.q.get()
            try:
                fn()
            except Exception as e:  # a bug must not stop the pool
                self.log(f"simulated executor: {type(e).__name__}: {e}")

    def _store(self, host, url):
        conns = getattr(self.local, "conns", None)
        if conns is None:
            conns = self.local.conns = {}
        if host not in conns:
            conns[host] = _Gcs(host)
        return _Store(conns[host], url)

    def stats(self):
        with self.lock:
            return {"in_flight": self.in_flight, "started": self.started,
                    "records": self.records}

    def start(self, spec, env, storage_host, still_wanted, on_exit):
        """Begin one attempt. env: the container's environment as the fake
        built it; spec: check_spec's dict; still_wanted(): False once the
        attempt was cancelled or timed out (then nothing more is written);
        on_exit(code, message): how the attempt ended."""
        with self.lock:
            self.in_flight += 1
            self.started += 1

        def done(code, msg=None):
            with self.lock:
                self.in_flight -= 1
            on_exit(code, msg)

        self.q.put(lambda: self._begin(spec, env, storage_host, still_wanted, done))

    def _begin(self, spec, env, host, still_wanted, done):
        eid, sid = env.get("EXECUTION_ID", ""), env.get("SESSION_ID", "")
        if not eid or not sid or not env.get("RUNPOOL_STATE_URL"):
            done(EXIT_CONTRACT, "simulated executor: EXECUTION_ID, SESSION_ID and "
                                "RUNPOOL_STATE_URL are required")
            return
        if not host:
            done(EXIT_FAILED, "simulated executor: no STORAGE_EMULATOR_HOST")
            return
        try:
            st = self._store(host, env["RUNPOOL_STATE_URL"])
            rkey = f"executions/{eid}/result.json"
            if st.get(rkey) is not None:
                done(EXIT_RECORDED)
                return
            ref = env.get("RUNPOOL_REQUEST_REF", "")
            if ref and ref != "-" and st.get(ref) is None:
                done(EXIT_CONTRACT, f"simulated executor: request document {ref} is missing")
                return
            raw, state_version = st.get_versioned(f"sessions/{sid}/state.json")
            session = json.loads(raw) if raw is not None else {}
            claim = {"v": 1, "execution_id": eid,
                     "run": f"cloudrun:{env.get('CLOUD_RUN_EXECUTION', '')}",
                     "attempt": int(env.get("RUNPOOL_ATTEMPT") or 1),
                     "claimed_at_ms": int(time.time() * 1000)}
            if env.get("CLOUD_RUN_JOB"):
                claim["job"] = env["CLOUD_RUN_JOB"]
            cbytes = json.dumps(claim, separators=(",", ":")).encode()
            ckey = f"executions/{eid}/claim.json"
            if not st.create(ckey, cbytes) and st.get(ckey) != cbytes:
                done(EXIT_CLAIMED)
                return
        except (StorageError, ValueError) as e:
            done(EXIT_FAILED, f"simulated executor: {e}")
            return
        started = time.time()
        home = env.get("HOME", "")
        cwd = (session.get("cwd") or env.get("RUNPOOL_DEFAULT_CWD") or
               (home if home.startswith("/") and os.path.isdir(home) else "/"))
        senv = {k: v for k, v in (session.get("env") or {}).items()
                if k not in CONTRACT_VARS and not k.startswith("RUNPOOL_")}

        try:
            timeout_ms = int(env.get("TIMEOUT") or 0) * 1000
        except ValueError:
            timeout_ms = 0
        run_ms = spec["duration_ms"]
        timed_out = 0 < timeout_ms < run_ms
        if timed_out:
            run_ms = timeout_ms

        def finish():
            if not still_wanted():
                done(EXIT_FAILED, "simulated executor: stopped")
                return
            ended = time.time()   # the "command" exits now; the write follows
            self.q.put(lambda: self._finish(spec, env, host, eid, sid, cwd, senv,
                                            session, state_version, started,
                                            ended, timed_out, done))
        self.loop.call_later(run_ms / 1000.0, finish)

    def _finish(self, spec, env, host, eid, sid, cwd, senv, session,
                state_version, started, ended, timed_out, done):
        code = 143 if timed_out else spec["exit_code"]
        rec = {"v": 1, "execution_id": eid, "session_id": sid,
               "status": "timed_out" if timed_out else
                         "succeeded" if code == 0 else "failed",
               "exit_code": code, "signal": None,
               "stdout": spec["stdout"], "stderr": spec["stderr"],
               "stdout_truncated": False, "stderr_truncated": False,
               "encoding": "utf-8", "cwd": cwd,
               "started_at": rfc3339_ms(started), "finished_at": rfc3339_ms(ended),
               "duration_ms": int(round((ended - started) * 1000))}
        ws = env.get("RUNPOOL_WORKSPACE", "")
        if ws and ws != "off" and not ws.startswith("mount:"):
            # What runpool-executor reports for a snapshot workspace the
            # command left as it found it: no file system here, so the
            # session's workspace (if any) counts as unchanged.
            cur = session.get("workspace") or {}
            rec["workspace"] = {"saved": True, "unchanged": True, "root": ws,
                                "bytes": cur.get("bytes", 0),
                                "files": cur.get("files", 0),
                                "bytes_uploaded": 0, "chunks_uploaded": 0,
                                "bytes_downloaded": 0, "restore_ms": 0,
                                "save_ms": 0, "skipped": 0}
        rec["state_version"] = state_version
        rec["env"] = senv
        data = json.dumps(rec, separators=(",", ":"), ensure_ascii=False).encode()
        try:
            self._store(host, env["RUNPOOL_STATE_URL"]).create(
                f"executions/{eid}/result.json", data)
        except StorageError as e:
            done(EXIT_FAILED, f"simulated executor: {e}")
            return
        with self.lock:
            self.records += 1
        done(EXIT_RECORDED)
