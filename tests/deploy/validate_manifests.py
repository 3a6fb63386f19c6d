#!/usr/bin/env python3
"""Validate deploy/k8s/**.yaml against the Kubernetes schemas
(kubernetes-validate, strict: unknown fields are errors) and the CRD
schemas of KEDA and the Prometheus Operator (the CRDs' openAPIV3Schema,
with jsonschema), then check the cross-field rules no schema knows:

  - terminationGracePeriodSeconds > --drain-timeout
  - ScaledObject maxReplicaCount <= the partition count it documents
    (annotation runpool.dev/requests-topic-partitions), >= minReplicaCount
  - runAsNonRoot with a numeric, non-zero runAsUser; no privilege
    escalation, ALL capabilities dropped, read-only root filesystem
  - liveness on /healthz, readiness on /readyz, on the --http-listen port
  - lagThreshold >= --max-running of the Deployment it scales
  - production manifests use --backend=cloudrun and gs:// state in the
    ConfigMap's SANDBOX_STATE_BUCKET; a local
    backend only in dev/ with replicas 1
  - the Dockerfiles' USER is numeric

Then proves the validator bites: broken copies (a wrong field type for
Kubernetes, for KEDA, and a broken cross-field rule) must be rejected.
Exit 0 only when every manifest passes and every broken copy fails.

Usage: validate_manifests.py REPO_ROOT CRD_DIR WORKER_HELP_FILE
"""
import copy
import glob
import os
import re
import sys

import jsonschema
import kubernetes_validate
import yaml

K8S_VERSION = "1.37.0"  # the schemas kubernetes-validate 1.37.0 bundles
HTTP_PORT = 9464
# The worker's longest stop past --drain-timeout (worker/rp_worker_int.h,
# RP_WORKER_STOP_SLACK_S); read from the source by main().
STOP_SLACK_S = None
# `runpool-worker --help` and docs/cloudrun.md (RUNPOOL_CLOUD_RUN_*, which
# the help names as a family); read by main(). Every worker flag and every
# ConfigMap key of the manifests must be one the worker knows: a renamed
# option would otherwise be found only when a pod refuses to start (or, for
# a variable, silently ignored).
WORKER_HELP = None
CLOUDRUN_DOC = None
KAFKA_PROPS = None  # librdkafka's property names (kafka/rp_kafka_props.inc)
CRDS = {  # (apiVersion, kind) -> CRD file in CRD_DIR
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_scaledobjects.yaml",
    ("keda.sh/v1alpha1", "TriggerAuthentication"):
        "keda.sh_triggerauthentications.yaml",
    ("monitoring.coreos.com/v1", "ServiceMonitor"):
        "monitoring.coreos.com_servicemonitors.yaml",
}


def crd_schema(crd_dir, api_version, kind):
    with open(os.path.join(crd_dir, CRDS[(api_version, kind)])) as f:
        crd = yaml.safe_load(f)
    version = api_version.split("/")[1]
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            schema = copy.deepcopy(v["schema"]["openAPIV3Schema"])
            break
    else:
        raise SystemExit(f"{CRDS[(api_version, kind)]}: no version {version}")
    # A CRD's schema is structural OpenAPI; strict like the API server
    # (unknown fields are pruned there, an error here, so typos show).
    def close(s):
        if isinstance(s, dict):
            if s.get("type") == "object" and "properties" in s and \
                    "additionalProperties" not in s and \
                    not s.get("x-kubernetes-preserve-unknown-fields"):
                s["additionalProperties"] = False
            for v in s.values():
                close(v)
        elif isinstance(s, list):
            for v in s:
                close(v)
    close(schema)
    # apiVersion/kind/metadata are checked by the API server itself.
    schema.setdefault("properties", {})
    return schema


def schema_errors(doc, crd_dir):
    """Error strings for one object ([] when valid)."""
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in CRDS:
        v = jsonschema.Draft7Validator(crd_schema(crd_dir, *key))
        return [f"{'/'.join(map(str, e.absolute_path)) or '.'}: {e.message}"
                for e in v.iter_errors(doc)]
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{'/'.join(map(str, e.path)) or '.'}: {e.message}"]
    except kubernetes_validate.SchemaNotFoundError as e:
        return [f"no schema for {key}: {e}"]
    return []


def args_of(container):
    out = {}
    for a in container.get("args", []) + container.get("command", []):
        m = re.match(r"^--([a-z-]+)=(.*)$", a)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def workload_rules(path, doc, dev, configmaps):
    errs = []
    spec = doc["spec"]["template"]["spec"]
    psc = spec.get("securityContext", {})
    c = spec["containers"][0]
    csc = c.get("securityContext", {})
    a = args_of(c)
    uid = csc.get("runAsUser", psc.get("runAsUser"))
    if not (csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True):
        errs.append("runAsNonRoot is not true")
    if not isinstance(uid, int) or isinstance(uid, bool) or uid <= 0:
        errs.append(f"runAsUser {uid!r} is not a numeric non-root uid")
    if csc.get("allowPrivilegeEscalation") is not False:
        errs.append("allowPrivilegeEscalation is not false")
    if csc.get("readOnlyRootFilesystem") is not True:
        errs.append("readOnlyRootFilesystem is not true")
    if "ALL" not in csc.get("capabilities", {}).get("drop", []):
        errs.append("capabilities do not drop ALL")
    args = c.get("args", [])
    for i, arg in enumerate(args):
        if arg.startswith("-X") or (i > 0 and args[i - 1] == "-X"):
            continue  # -X key=value, one arg or two
        m = re.match(r"^(--[a-z-]+)(=|$)", arg)
        if not m:
            errs.append(f"argument {arg!r} is not --option=value")
        elif not re.search(r"^  " + re.escape(m.group(1)) + r"(?=[\s=])",
                           WORKER_HELP, re.M):
            errs.append(f"{m.group(1)} is not an option of runpool-worker "
                        "(its --help)")
    drain = int(a.get("drain-timeout", "30"))  # the worker's default
    grace = spec.get("terminationGracePeriodSeconds", 30)
    if not grace > drain + STOP_SLACK_S:
        errs.append(f"terminationGracePeriodSeconds {grace} is not > "
                    f"--drain-timeout {drain} + {STOP_SLACK_S} s, the "
                    f"worker's longest stop")
    listen = a.get("http-listen", "")
    if not listen.endswith(f":{HTTP_PORT}"):
        errs.append(f"--http-listen {listen!r} is not on port {HTTP_PORT}")
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    for probe, want in (("livenessProbe", "/healthz"),
                        ("readinessProbe", "/readyz")):
        g = c.get(probe, {}).get("httpGet", {})
        port = g.get("port")
        port = ports.get(port, port) if isinstance(port, str) else port
        if g.get("path") != want or str(port) != listen.rsplit(":", 1)[-1]:
            errs.append(f"{probe} is {g.get('path')}:{port}, want "
                        f"{want}:{listen.rsplit(':', 1)[-1]}")
    backend = a.get("backend")
    if dev:
        if doc["spec"].get("replicas") != 1:
            errs.append("a dev (local backend) workload must have replicas 1")
    else:
        if backend != "cloudrun" or not a.get("state", "").startswith("gs://"):
            errs.append("production workload must use --backend=cloudrun "
                        "and gs:// state")
        bucket = configmaps.get("SANDBOX_STATE_BUCKET")
        st = a.get("state", "")
        if bucket is not None and st[len("gs://"):].split("/")[0] != bucket:
            errs.append(f"--state {st} is not in SANDBOX_STATE_BUCKET "
                        f"{bucket} (the worker refuses to start)")
        if spec.get("serviceAccountName") is None:
            errs.append("no serviceAccountName (Workload Identity)")
        if "$(POD_NAME)" not in a.get("instance-id", ""):
            errs.append("--instance-id is not the pod name")
        # Anyone who can write the topic must not be able to run commands.
        keys = a.get("signing-keys", "")
        mounts = [m["mountPath"] for m in c.get("volumeMounts", [])]
        if not keys:
            errs.append("no --signing-keys: unsigned requests would run")
        elif not any(keys.startswith(mp.rstrip("/") + "/") for mp in mounts):
            errs.append(f"--signing-keys {keys} is on no mounted volume")
    return [f"{path}: {doc['kind']}/{doc['metadata']['name']}: {e}"
            for e in errs]


def scaling_rules(path, so, workloads):
    errs = []
    ann = so["metadata"].get("annotations", {})
    parts = ann.get("runpool.dev/requests-topic-partitions")
    mx, mn = so["spec"].get("maxReplicaCount"), so["spec"].get(
        "minReplicaCount", 0)
    if parts is None:
        errs.append("no runpool.dev/requests-topic-partitions annotation")
    elif mx is None or not mn <= mx <= int(parts):
        errs.append(f"replicas {mn}..{mx} not within 0..{parts} partitions")
    ref = so["spec"]["scaleTargetRef"]
    target = workloads.get((ref.get("kind", "Deployment"), ref["name"]))
    if target is None:
        errs.append(f"scaleTargetRef {ref} names no manifest here")
    for t in so["spec"]["triggers"]:
        md = t["metadata"]
        if t["type"] != "kafka":
            continue
        if md.get("offsetResetPolicy") != "earliest":
            errs.append("offsetResetPolicy is not earliest (the worker's "
                        "auto.offset.reset)")
        if target is not None:
            mr = args_of(target["spec"]["template"]["spec"]["containers"][0]
                         ).get("max-running")
            if mr is None or int(md["lagThreshold"]) < int(mr):
                errs.append(f"lagThreshold {md['lagThreshold']} < "
                            f"--max-running {mr}: in-flight work alone "
                            "would scale out")
    return [f"{path}: ScaledObject/{so['metadata']['name']}: {e}"
            for e in errs]


def check(docs, crd_dir):
    """docs: [(path, doc)]. Returns error strings."""
    errs = []
    workloads = {}
    for path, d in docs:
        errs += [f"{path}: {d.get('kind')}/"
                 f"{d.get('metadata', {}).get('name')}: {e}"
                 for e in schema_errors(d, crd_dir)]
        if d.get("kind") in ("Deployment", "StatefulSet"):
            workloads[(d["kind"], d["metadata"]["name"])] = d
    if errs:  # the rules below assume well-formed objects
        return errs
    cm = {}
    for path, d in docs:
        if d["kind"] == "ConfigMap" and "/dev/" not in path:
            cm.update(d.get("data", {}))
        if d["kind"] == "ConfigMap":
            for key in d.get("data", {}):
                if key.startswith("RUNPOOL_KAFKA_") and \
                        key != "RUNPOOL_KAFKA_CONFIG":
                    # RUNPOOL_KAFKA_<NAME>: a librdkafka property
                    # (kafka/rp_kafka.h), checked against its table.
                    prop = key[len("RUNPOOL_KAFKA_"):].lower().replace("_", ".")
                    if prop not in KAFKA_PROPS:
                        errs.append(f"{path}: ConfigMap/"
                                    f"{d['metadata']['name']}: {key}: "
                                    f"{prop} is not a librdkafka property")
                    continue
                known = CLOUDRUN_DOC if key.startswith(
                    "RUNPOOL_CLOUD_RUN_") else WORKER_HELP
                if not re.search(r"(?<![A-Z0-9_])" + re.escape(key) +
                                 r"(?![A-Z0-9_])", known):
                    errs.append(f"{path}: ConfigMap/{d['metadata']['name']}: "
                                f"{key} is a variable the worker does not "
                                "read (not in its --help or docs/cloudrun.md)")
    for path, d in docs:
        if d["kind"] in ("Deployment", "StatefulSet"):
            errs += workload_rules(path, d, "/dev/" in path, cm)
        elif d["kind"] == "ScaledObject":
            errs += scaling_rules(path, d, workloads)
    return errs


def dockerfile_errors(root):
    errs = []
    for p in sorted(glob.glob(os.path.join(root, "deploy/docker/*Dockerfile"))):
        users = re.findall(r"^USER\s+(\S+)", open(p).read(), re.M)
        if not users or not re.fullmatch(r"\d+(:\d+)?", users[-1]) or \
                users[-1].split(":")[0] == "0":
            errs.append(f"{p}: final USER {users[-1:]} is not a numeric "
                        "non-root uid")
    return errs


def stop_slack(root):
    """RP_WORKER_STOP_SLACK_S + RP_WORKER_WATCHDOG_GRACE_S: the longest a
    worker's stop may take past --drain-timeout, the watchdog included."""
    with open(os.path.join(root, "worker/rp_worker_int.h")) as f:
        text = f.read()
    total = 0
    for name in ("RP_WORKER_STOP_SLACK_S", "RP_WORKER_WATCHDOG_GRACE_S"):
        m = re.search(r"#define " + name + r" (\d+)", text)
        if not m:
            sys.exit(f"{name} not found in worker/rp_worker_int.h")
        total += int(m.group(1))
    return total


def main():
    global STOP_SLACK_S, WORKER_HELP, CLOUDRUN_DOC, KAFKA_PROPS
    root, crd_dir, help_file = sys.argv[1], sys.argv[2], sys.argv[3]
    STOP_SLACK_S = stop_slack(root)
    with open(help_file) as f:
        WORKER_HELP = f.read()
    if "--drain-timeout" not in WORKER_HELP:
        sys.exit(f"{help_file} is not runpool-worker --help")
    with open(os.path.join(root, "docs/cloudrun.md")) as f:
        CLOUDRUN_DOC = f.read()
    with open(os.path.join(root, "kafka/rp_kafka_props.inc")) as f:
        KAFKA_PROPS = set(re.findall(r'^\{"([a-z0-9.]+)"', f.read(), re.M))
    if "sasl.password" not in KAFKA_PROPS:
        sys.exit("kafka/rp_kafka_props.inc: no property table found")
    for f in CRDS.values():
        if not os.path.isfile(os.path.join(crd_dir, f)):
            sys.exit(f"FAIL: {crd_dir}/{f} missing: run "
                     "scripts/install-test-deps.sh")
    docs = []
    files = sorted(glob.glob(os.path.join(root, "deploy/k8s/**/*.yaml"),
                             recursive=True))
    for p in files:
        rel = os.path.relpath(p, root)
        with open(p) as f:
            for d in yaml.safe_load_all(f):
                if d is not None:
                    docs.append((rel, d))
    kinds = sorted({d["kind"] for _, d in docs})
    print(f"{len(files)} files, {len(docs)} objects: {', '.join(kinds)}")
    for need in ("Deployment", "ScaledObject", "TriggerAuthentication",
                 "PodDisruptionBudget", "ServiceMonitor"):
        if need not in kinds:
            sys.exit(f"FAIL: no {need} in deploy/k8s")
    errs = check(docs, crd_dir) + dockerfile_errors(root)
    for e in errs:
        print("FAIL:", e)
    if errs:
        return 1

    # Negative checks: each broken copy must be rejected, for the reason
    # we broke it.
    def broken(kind, mutate, expect):
        out, done = [], False
        for p, d in docs:
            d = copy.deepcopy(d)
            if d["kind"] == kind and "/dev/" not in p and not done:
                mutate(d)
                done = True
            out.append((p, d))
        e = check(out, crd_dir)
        ok = any(expect in x for x in e)
        print(f"negative: {kind} {expect!r}: "
              f"{'rejected' if ok else 'NOT REJECTED'}"
              + (f" ({e[0]})" if e else ""))
        return ok

    def dep_grace(d):
        d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "60"

    def dep_unknown(d):
        d["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}

    def so_type(d):
        d["spec"]["maxReplicaCount"] = "twelve"

    def so_too_many(d):
        d["spec"]["maxReplicaCount"] = 13

    def grace_short(d):
        d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 30

    def unknown_env(d):
        d["data"]["RUNPOOL_MAX_RUNING"] = "5"

    def no_signing(d):
        c = d["spec"]["template"]["spec"]["containers"][0]
        c["args"] = [x for x in c["args"] if "signing-keys" not in x]

    def prefix_flag(d):  # --max is a prefix of --max-running, no option
        c = d["spec"]["template"]["spec"]["containers"][0]
        c["args"] = c["args"] + ["--max=5"]

    def kafka_env_bad(d):
        d["data"]["RUNPOOL_KAFKA_SECURITY_PROTOCL"] = "SASL_SSL"

    def unknown_flag(d):
        c = d["spec"]["template"]["spec"]["containers"][0]
        c["args"] = c["args"] + ["--max-runing=5"]

    def grace_tight(d):  # above the drain, below drain + the stop's slack
        d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 45

    def uid_name(d):
        d["spec"]["template"]["spec"]["securityContext"]["runAsUser"] = 0

    def probe_path(d):
        c = d["spec"]["template"]["spec"]["containers"][0]
        c["readinessProbe"]["httpGet"]["path"] = "/healthz"

    def state_bucket(d):
        c = d["spec"]["template"]["spec"]["containers"][0]
        c["args"] = [x.replace("gs://PROJECT_ID-runpool-state",
                               "gs://other-bucket") for x in c["args"]]

    def sm_type(d):
        d["spec"]["endpoints"][0]["port"] = 9464

    def pdb_type(d):
        d["spec"]["maxUnavailable"] = [1]

    results = [
        broken("Deployment", dep_grace, "terminationGracePeriodSeconds"),
        broken("Deployment", dep_unknown, "livenesProbe"),
        broken("ScaledObject", so_type, "maxReplicaCount"),
        broken("ScaledObject", so_too_many, "partitions"),
        broken("Deployment", grace_short, "not > --drain-timeout"),
        broken("Deployment", grace_tight, "the worker's longest stop"),
        broken("Deployment", unknown_flag, "--max-runing is not an option"),
        broken("ConfigMap", unknown_env, "RUNPOOL_MAX_RUNING is a variable"),
        broken("Deployment", prefix_flag, "--max is not an option"),
        broken("Deployment", no_signing, "unsigned requests would run"),
        broken("ConfigMap", kafka_env_bad, "security.protocl is not a librdkafka"),
        broken("Deployment", uid_name, "runAsUser"),
        broken("Deployment", probe_path, "readinessProbe"),
        broken("Deployment", state_bucket, "SANDBOX_STATE_BUCKET"),
        broken("ServiceMonitor", sm_type, "port"),
        broken("PodDisruptionBudget", pdb_type, "maxUnavailable"),
    ]
    if not all(results):
        print("FAIL: a broken manifest was accepted")
        return 1

    # Positive: what the worker does accept must pass the same rules.
    def fine(d):
        if d["kind"] == "ConfigMap":
            d["data"]["RUNPOOL_KAFKA_SECURITY_PROTOCOL"] = "SASL_SSL"
        else:
            c = d["spec"]["template"]["spec"]["containers"][0]
            c["args"] = c["args"] + ["-X", "fetch.wait.max.ms=50",
                                     "-Xacks=all"]
    for kind in ("ConfigMap", "Deployment"):
        out = []
        for p, d in docs:
            d = copy.deepcopy(d)
            if d["kind"] == kind and "/dev/" not in p:
                fine(d)
            out.append((p, d))
        e = check(out, crd_dir)
        print(f"positive: {kind} with valid extra settings: "
              f"{'accepted' if not e else 'REJECTED: ' + e[0]}")
        if e:
            return 1
    print(f"ok: {len(docs)} objects valid (Kubernetes {K8S_VERSION} strict, "
          f"KEDA and ServiceMonitor CRD schemas); {len(results)} broken "
          "copies rejected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
