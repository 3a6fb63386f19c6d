"""The README's client examples against a real dev broker and worker:
examples/python/runpool_client.py (confluent-kafka) and examples/c/run_one.c
built against an installed copy of the producer library.

Starts runpool-devbroker and one runpool-worker (local backend, file
state) from RP_BIN_DIR, then uses the example the way a backend would:
as a library and as a program. Fails, never skips, when confluent-kafka
is missing from the venv.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

ROOT = os.environ.get("RP_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ["RP_BIN_DIR"]
EXAMPLE = os.path.join(ROOT, "examples", "python", "runpool_client.py")
sys.path.insert(0, os.path.dirname(EXAMPLE))
import runpool_client  # noqa: E402


def _wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


@pytest.fixture(scope="module")
def pool():
    tmp = tempfile.mkdtemp(prefix="rp-pyclient-")
    procs = []
    try:
        bootfile = os.path.join(tmp, "bootstrap")
        broker = subprocess.Popen(
            [os.path.join(BIN, "runpool-devbroker"), "--partitions", "4",
             "--bootstrap-file", bootfile],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "broker.log"), "w"))
        procs.append(broker)
        line = _wait_for(lambda: os.path.exists(bootfile) and open(bootfile).read().strip(),
                         20, "the dev broker's bootstrap file")
        brokers = line.split("=", 1)[1]
        wlog = os.path.join(tmp, "worker.log")
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOOL_")}
        worker = subprocess.Popen(
            [os.path.join(BIN, "runpool-worker"), "--brokers", brokers,
             "--group", "rp-pyclient-%d" % os.getpid(), "--backend", "local",
             "--state", "file://" + os.path.join(tmp, "state"),
             "--workdir", os.path.join(tmp, "work"),
             "-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=500"],
            stdout=subprocess.DEVNULL, stderr=open(wlog, "w"), env=env)
        procs.append(worker)
        # Ready when the worker got its partitions (its log says so).
        _wait_for(lambda: worker.poll() is None and
                  "partitions_assigned" in open(wlog).read(), 30,
                  "the worker's assignment")
        yield {"brokers": brokers, "tmp": tmp, "worker": worker}
        assert worker.poll() is None, "the worker died during the test"
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def test_session_state_carries_over(pool):
    c = runpool_client.RunpoolClient(pool["brokers"])
    try:
        a = c.submit("py-s1", "mkdir -p sub && cd sub && export GREETING=hello")
        b = c.submit("py-s1", 'echo "$GREETING from $(basename "$PWD")"')
        # Waiting in the other order exercises the pending results.
        rb = c.wait(b, timeout=60)
        ra = c.wait(a, timeout=60)
    finally:
        c.close()
    assert ra["execution_id"] == a and ra["status"] == "succeeded"
    assert rb["execution_id"] == b and rb["status"] == "succeeded"
    assert rb["stdout"] == "hello from sub\n"


def test_failed_command_is_a_result_not_an_exception(pool):
    c = runpool_client.RunpoolClient(pool["brokers"])
    try:
        r = c.wait(c.submit("py-s2", "echo oops >&2; exit 7"), timeout=60)
    finally:
        c.close()
    assert r["status"] == "failed" and r["exit_code"] == 7
    assert r["stderr"] == "oops\n"


def test_wait_times_out(pool):
    c = runpool_client.RunpoolClient(pool["brokers"])
    try:
        eid = c.submit("py-s3", "sleep 3")
        t0 = time.monotonic()
        with pytest.raises(runpool_client.ResultTimeout):
            c.wait(eid, timeout=0.5)
        assert time.monotonic() - t0 < 3
        # The result still comes, and a later wait gets it.
        assert c.wait(eid, timeout=60)["status"] == "succeeded"
    finally:
        c.close()


def test_same_partition_as_runpool_produce(pool):
    """murmur2_random: Python and C producers put a session on one partition."""
    sessions = ["py-part-%d" % i for i in range(12)]
    c = runpool_client.RunpoolClient(pool["brokers"])
    py_ids = {}
    try:
        for s in sessions:
            py_ids[c.submit(s, "true")] = s
    finally:
        c.close()
    c_ids = {}
    for s in sessions:
        out = subprocess.run([os.path.join(BIN, "runpool-produce"), "--brokers", pool["brokers"],
                              "--session", s, "--", "true"],
                             check=True, capture_output=True, text=True, timeout=60)
        c_ids[out.stdout.strip()] = s
    want = set(py_ids) | set(c_ids)
    cons = Consumer({"bootstrap.servers": pool["brokers"], "group.id": "rp-pyclient-check",
                     "enable.auto.commit": False})
    part_of = {}
    try:
        md = cons.list_topics("runpool.requests", timeout=10)
        cons.assign([TopicPartition("runpool.requests", p, 0)
                     for p in md.topics["runpool.requests"].partitions])
        deadline = time.monotonic() + 30
        while set(part_of) != want and time.monotonic() < deadline:
            m = cons.poll(0.5)
            if m is None or m.error():
                continue
            eid = json.loads(m.value())["execution_id"]
            if eid in want:
                part_of[eid] = m.partition()
    finally:
        cons.close()
    assert set(part_of) == want
    used = set()
    for eid, s in py_ids.items():
        c_eid = next(e for e, cs in c_ids.items() if cs == s)
        assert part_of[eid] == part_of[c_eid], s
        used.add(part_of[eid])
    assert len(used) > 1, "12 sessions all on one partition: the check proves nothing"


def test_as_a_program(pool):
    out = subprocess.run([sys.executable, EXAMPLE, "--brokers", pool["brokers"],
                          "--session", "py-cli", "echo from-cli"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["status"] == "succeeded" and r["stdout"] == "from-cli\n"
    bad = subprocess.run([sys.executable, EXAMPLE, "--brokers", pool["brokers"],
                          "--session", "py-cli", "--timeout", "0.3", "sleep 2"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "no result" in bad.stderr


def test_c_package_installed_copy(pool, tmp_path):
    """The producer library installed as a package, used by a C program built
    with pkg-config and with find_package, run against the pool."""
    build = os.environ["RP_BUILD_DIR"]
    # A sanitizer build's archives need the same flags in the program.
    san = os.environ.get("RP_SANITIZE_FLAGS", "").split()
    prefix = tmp_path / "prefix"
    subprocess.run(["cmake", "--install", build, "--component", "dev", "--prefix", str(prefix)],
                   check=True, capture_output=True, timeout=120)
    src = os.path.join(ROOT, "examples", "c")
    pc = subprocess.run(["pkg-config", "--cflags", "--libs", "runpool-producer"],
                        check=True, capture_output=True, text=True,
                        env={**os.environ, "PKG_CONFIG_PATH": str(prefix / "lib" / "pkgconfig")})
    assert str(prefix) in pc.stdout or "/lib/pkgconfig/../.." in pc.stdout
    exe_pc = tmp_path / "run_one_pc"
    subprocess.run(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", *san,
                    os.path.join(src, "run_one.c"), "-o", str(exe_pc), *pc.stdout.split()],
                   check=True, timeout=120)
    out_dir = tmp_path / "cmake-build"
    subprocess.run(["cmake", "-S", src, "-B", str(out_dir), "-DCMAKE_PREFIX_PATH=" + str(prefix),
                    "-DCMAKE_C_FLAGS=" + " ".join(san),
                    "-DCMAKE_EXE_LINKER_FLAGS=" + " ".join(san)],
                   check=True, capture_output=True, timeout=120)
    subprocess.run(["cmake", "--build", str(out_dir)], check=True, capture_output=True, timeout=120)
    for n, exe in enumerate([str(exe_pc), str(out_dir / "run_one")]):
        out = subprocess.run([exe, pool["brokers"], "c-pkg-%d" % n, "echo built-%d" % n],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        r = json.loads(out.stdout)
        assert r["status"] == "succeeded" and r["stdout"] == "built-%d\n" % n


# ---- signed requests (schemas/README.md, "Signed requests") ----

SIGN_TOOL = os.environ.get("RP_SIGN_TOOL", "")
K1 = bytes(range(32))
K2 = b"runpool-second-key-0123456789abc"
VECTOR_VALUE = (b'{"v":1,"execution_id":"e-1","session_id":"user-42",'
                b'"command":"echo hi"}')
VECTOR_HEADER = ("t=1764770000,kid=k1,v1="
                 "dc907c6ef6f80e60ecbf385a17adbe72d78bdb24fd7bbd682a254fc36eec3937")


def _key_file(tmp_path, mode=0o600):
    import base64
    path = tmp_path / "signing.keys"
    path.write_text("# test keys\nk1:%s\nk2:%s\n" % (base64.b64encode(K1).decode(),
                                                     base64.b64encode(K2).decode()))
    os.chmod(path, mode)
    return str(path)


def _c_sign(keyfile, kid, t, key, value):
    assert SIGN_TOOL and os.access(SIGN_TOOL, os.X_OK), "RP_SIGN_TOOL is not built"
    out = subprocess.run([SIGN_TOOL, keyfile, kid, str(t), key.decode()], input=value,
                         capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.decode().strip()


def test_signature_vector_is_the_documented_one():
    got = runpool_client.sign(K1, "k1", 1764770000, b"user-42", VECTOR_VALUE)
    assert got == VECTOR_HEADER
    doc = open(os.path.join(ROOT, "schemas", "README.md")).read()
    assert VECTOR_HEADER in doc and VECTOR_VALUE.decode() in doc


def test_c_and_python_signers_agree(tmp_path):
    keyfile = _key_file(tmp_path)
    cases = [
        ("k1", 1764770000, b"user-42", VECTOR_VALUE),
        ("k2", 1764770000, b"user-42", VECTOR_VALUE),
        ("k1", 0, b"", b""),
        ("k2", 999999999999, b"a.b:c-d_e", b"."),
        ("k1", 1700000000, b"s1", '{"command":"echo h\u00e9 \u2603"}'.encode()),
        ("k2", 1700000001, b"s2", bytes(range(256)) * 3),  # not UTF-8, NULs
        ("k1", 1700000002, b"s3", b"x" * (300 * 1024)),
    ]
    for kid, t, key, value in cases:
        key_bytes = K1 if kid == "k1" else K2
        py = runpool_client.sign(key_bytes, kid, t, key, value)
        assert _c_sign(keyfile, kid, t, key, value) == py, (kid, t, key)
    assert _c_sign(keyfile, "k1", *cases[0][1:]) == VECTOR_HEADER


def test_key_file_open_to_others_is_refused(tmp_path):
    keyfile = _key_file(tmp_path, 0o644)
    with pytest.raises(ValueError, match="mode 0644"):
        runpool_client.load_signing_keys(keyfile)
    out = subprocess.run([SIGN_TOOL, keyfile, "k1", "1", "k"], input=b"",
                         capture_output=True, timeout=30)
    assert out.returncode == 2 and b"mode 0644" in out.stderr


def test_signed_submit_carries_the_c_signature(pool, tmp_path):
    """The client signs what it sends: the header on the message in the
    requests topic is what the C signer computes for that message's t, key
    and value bytes."""
    keyfile = _key_file(tmp_path)
    c = runpool_client.RunpoolClient(pool["brokers"], signing_keys=keyfile,
                                     signing_kid="k2")
    try:
        eid = c.submit("py-signed", "echo signed")
        assert c.wait(eid, timeout=60)["status"] == "succeeded"
    finally:
        c.close()
    cons = Consumer({"bootstrap.servers": pool["brokers"], "group.id": "rp-pyclient-sig",
                     "enable.auto.commit": False})
    found = None
    try:
        md = cons.list_topics("runpool.requests", timeout=10)
        cons.assign([TopicPartition("runpool.requests", p, 0)
                     for p in md.topics["runpool.requests"].partitions])
        deadline = time.monotonic() + 30
        while found is None and time.monotonic() < deadline:
            m = cons.poll(0.5)
            if m is not None and not m.error() and b'"%s"' % eid.encode() in m.value():
                found = m
    finally:
        cons.close()
    assert found is not None
    hdr = dict(found.headers())["runpool-signature"].decode()
    t = int(hdr.split(",")[0][2:])
    assert abs(t - time.time()) < 120 and ",kid=k2," in hdr
    assert _c_sign(keyfile, "k2", t, found.key(), found.value()) == hdr
