#!/usr/bin/env bash
# Install the test-only tools that scripts/test needs into .tools/bin
# (git-ignored), each pinned to one version. Idempotent: a tool already at
# its pinned version is left alone, so calling this on every run is cheap.
#
#   promtool         from Debian's prometheus package (2.42, pinned below):
#                    integration.metrics validates /metrics with
#                    `promtool check metrics`, and fails without it.
#   fake-gcs-server  Cloud Storage emulator for tests/unit/test_state_gs.c,
#                    built from source with `go install` (needs Go >= 1.26;
#                    v1.56.1's go.mod says "go 1.26").
#
# Usage: scripts/install-test-deps.sh    (RP_TOOLS_BIN overrides .tools/bin)
set -euo pipefail

RP_ROOT=$(cd "$(dirname "$0")/.." && pwd)
RP_TOOLS_BIN=${RP_TOOLS_BIN:-$RP_ROOT/.tools/bin}

# Newest v1.5x tag on the Go module proxy when pinned (go list -m -versions
# github.com/fsouza/fake-gcs-server), built and tested with go1.26.8.
FAKE_GCS_MODULE=github.com/fsouza/fake-gcs-server
FAKE_GCS_VERSION=v1.56.1
FAKE_GCS_GO_MIN=1.26

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'install-test-deps: %s\n' "$*" >&2; exit 1; }

install_fake_gcs() {
  local bin=$RP_TOOLS_BIN/fake-gcs-server
  local stamp=$RP_TOOLS_BIN/.fake-gcs-server.version
  local want="$FAKE_GCS_MODULE@$FAKE_GCS_VERSION"
  local have gover tmp

  have=$(cat "$stamp" 2>/dev/null || true)
  if [ -x "$bin" ] && [ "$have" = "$want" ]; then
    return 0
  fi
  command -v go >/dev/null ||
    die "Go >= $FAKE_GCS_GO_MIN is needed to build fake-gcs-server (https://go.dev/dl/)"
  # Build with the Go that is installed; do not fetch another toolchain
  # behind the user's back (GOTOOLCHAIN=auto in the environment allows it).
  export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
  gover=$(go env GOVERSION)
  gover=${gover#go}
  if [ "$GOTOOLCHAIN" = local ] &&
     [ "$(printf '%s\n%s\n' "$FAKE_GCS_GO_MIN" "$gover" | sort -V | head -n1)" != "$FAKE_GCS_GO_MIN" ]; then
    die "fake-gcs-server $FAKE_GCS_VERSION needs Go >= $FAKE_GCS_GO_MIN, found $gover (install a newer Go, or set GOTOOLCHAIN=auto)"
  fi

  log "installing $want into $RP_TOOLS_BIN (go $gover)"
  mkdir -p "$RP_TOOLS_BIN"
  tmp=$(mktemp -d "$RP_TOOLS_BIN/.install.XXXXXX")
  # Build into a temp dir and move into place: an interrupted build never
  # leaves a half-written binary under the real name.
  if ! GOBIN=$tmp CGO_ENABLED=0 go install "$want"; then
    rm -rf "$tmp"
    die "go install $want failed"
  fi
  mv -f "$tmp/fake-gcs-server" "$bin"
  rm -rf "$tmp"
  printf '%s\n' "$want" >"$stamp"
}

install_fake_gcs

# ---- rp_install_promtool ----------------------------------------------------
# `promtool check metrics`, Prometheus's own parser and linter of the text
# exposition format, for integration.metrics. Debian 12 ships it in the
# prometheus package (the server comes along; the package starts it as a
# service where systemd runs, which a test machine may ignore).
RP_PROMETHEUS_APT="prometheus=2.42.*"
rp_install_promtool() {
  local sudo=""
  if command -v promtool >/dev/null &&
     dpkg-query -W -f='${Version}' prometheus 2>/dev/null | grep -q '^2\.42\.'; then
    return 0
  fi
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  log "installing $RP_PROMETHEUS_APT from Debian (for promtool)"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "$RP_PROMETHEUS_APT" ||
    die "apt-get install $RP_PROMETHEUS_APT failed"
}

rp_install_promtool
# ---- end rp_install_promtool ------------------------------------------------

# ---- rp_install_python_test_deps ------------------------------------------
# Python test tools (tests/conformance: Google's google-cloud-run client
# checks tests/fakes/cloudrun) in a project-local venv, .tools/venv
# (git-ignored), every package pinned in tests/conformance/requirements.txt.
# Idempotent: a stamp with the requirements' hash and the interpreter's
# version skips the work when nothing changed. RP_PYTHON picks the
# interpreter (default python3, >= 3.11); RP_VENV overrides .tools/venv.
rp_install_python_test_deps() {
  local root req venv py stamp want have pyver
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  req=$root/tests/conformance/requirements.txt
  venv=${RP_VENV:-$root/.tools/venv}
  py=${RP_PYTHON:-python3}
  stamp=$venv/.runpool-requirements.stamp

  command -v "$py" >/dev/null ||
    { printf 'install-test-deps: %s not found (Python >= 3.11 is needed)\n' "$py" >&2; return 1; }
  pyver=$("$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
  "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    { printf 'install-test-deps: %s is Python %s, need >= 3.11\n' "$py" "$pyver" >&2; return 1; }
  want="$(sha256sum "$req" | cut -d' ' -f1) python-$pyver"
  have=$(cat "$stamp" 2>/dev/null || true)
  if [ -x "$venv/bin/python" ] && [ "$have" = "$want" ]; then
    return 0
  fi

  printf '==> installing Python test packages into %s (python %s)\n' "$venv" "$pyver" >&2
  # A venv made by another interpreter version is rebuilt from scratch.
  if [ -x "$venv/bin/python" ] &&
     [ "$("$venv/bin/python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')" != "$pyver" ]; then
    rm -rf "$venv"
  fi
  if [ ! -x "$venv/bin/python" ]; then
    "$py" -m venv "$venv" ||
      { printf 'install-test-deps: "%s -m venv" failed (Debian: apt-get install python3-venv)\n' "$py" >&2; return 1; }
  fi
  "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$req" ||
    { printf 'install-test-deps: pip install -r %s failed\n' "$req" >&2; return 1; }
  "$venv/bin/python" -m pip check >&2 ||
    { printf 'install-test-deps: pip check failed in %s\n' "$venv" >&2; return 1; }
  printf '%s\n' "$want" >"$stamp"
}

rp_install_python_test_deps
# ---- end rp_install_python_test_deps --------------------------------------

# ---- rp_install_kafka -----------------------------------------------------
# Apache Kafka for the end-to-end tests against a real broker
# (integration.kafka.*): the release pinned in tests/kafka/pom.xml, resolved
# with Maven from Maven Central (org.apache.kafka:kafka_2.13 + kafka-tools and
# their runtime dependencies) into .tools/kafka/libs (git-ignored). Needs
# java (17) and mvn. Idempotent: tests/kafka/install keeps a stamp (version
# + hash of the pom) and does nothing when it matches. RP_KAFKA_HOME
# overrides .tools/kafka. See tests/kafka/README.md.
rp_install_kafka() {
  local root sudo=""
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  # Machines of this kind ship a JDK and Maven; install Debian's only when
  # they are missing, rather than a second JDK beside the first.
  if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    log "installing Java 17 and Maven from Debian"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends "openjdk-17-jre-headless=17.*" "maven=3.8.*"
  fi
  "$root/tests/kafka/install" ||
    { printf 'install-test-deps: tests/kafka/install failed\n' >&2; return 1; }
}

rp_install_kafka
# ---- end rp_install_kafka -------------------------------------------------

# ---- rp_install_fuzz_toolchain --------------------------------------------
# clang 14 and its runtimes (libFuzzer, ASan, UBSan) from Debian 12 for the
# fuzz tree (tests/fuzz, build-fuzz): pinned to the bookworm series.
RP_FUZZ_APT_PACKAGES=("clang-14=1:14.0.6*" "libclang-rt-14-dev=1:14.0.6*")
rp_install_fuzz_toolchain() {
  local missing=() spec sudo=""
  for spec in "${RP_FUZZ_APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "${spec%%=*}" 2>/dev/null | grep -q "install ok installed" ||
      missing+=("$spec")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing the fuzz toolchain: ${missing[*]}"
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" ||
    die "apt-get install ${missing[*]} failed"
}

rp_install_fuzz_toolchain
# ---- end rp_install_fuzz_toolchain ----------------------------------------

# ---- rp_install_deploy_validators -----------------------------------------
# Manifest validation for tests/deploy: kubernetes-validate (bundles the
# Kubernetes schemas) and jsonschema in their own venv, .tools/venv-deploy
# (kept apart from the conformance venv and its pins), from
# tests/deploy/requirements.txt; and the CRD schemas the manifests use,
# taken from the Go module zips on the Go module proxy (GitHub is not
# needed), checked against pinned sha256s, into .tools/crds. Idempotent (a
# stamp of the pins). RP_PYTHON picks the interpreter; GOPROXY the proxy.
RP_KEDA_MODULE=github.com/kedacore/keda/v2
RP_KEDA_VERSION=v2.21.0
RP_KEDA_ZIP_SHA256=74b59fe16144250748b716d6dc8789dee52d26164daab732145bed60456013a4
RP_PROMOP_MODULE=github.com/prometheus-operator/prometheus-operator
RP_PROMOP_VERSION=v0.85.0
RP_PROMOP_ZIP_SHA256=0bdb88ed823d0f2e86cf909638439b6ad1da744a228172c7411d9987527dc5d1
rp_install_deploy_validators() {
  local root req venv py stamp want have crds proxy tmp m
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  req=$root/tests/deploy/requirements.txt
  venv=${RP_DEPLOY_VENV:-$root/.tools/venv-deploy}
  crds=$root/.tools/crds
  py=${RP_PYTHON:-python3}
  stamp=$crds/.stamp
  want="$(sha256sum "$req" | cut -d' ' -f1) $RP_KEDA_VERSION $RP_PROMOP_VERSION $("$py" -V 2>&1)"
  have=$(cat "$stamp" 2>/dev/null || true)
  if [ -x "$venv/bin/python" ] && [ "$have" = "$want" ]; then
    return 0
  fi
  log "installing manifest validators into $venv and CRD schemas into $crds"
  if [ ! -x "$venv/bin/python" ]; then
    "$py" -m venv "$venv" ||
      { printf 'install-test-deps: "%s -m venv" failed\n' "$py" >&2; return 1; }
  fi
  "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$req" ||
    { printf 'install-test-deps: pip install -r %s failed\n' "$req" >&2; return 1; }
  proxy=${GOPROXY:-https://proxy.golang.org}
  proxy=${proxy%%,*}
  [ "$proxy" = direct ] || [ "$proxy" = off ] && proxy=https://proxy.golang.org
  mkdir -p "$crds"
  tmp=$(mktemp -d)
  # module version sha256 path-in-zip...
  for m in "$RP_KEDA_MODULE $RP_KEDA_VERSION $RP_KEDA_ZIP_SHA256 config/crd/bases/keda.sh_scaledobjects.yaml config/crd/bases/keda.sh_triggerauthentications.yaml" \
           "$RP_PROMOP_MODULE $RP_PROMOP_VERSION $RP_PROMOP_ZIP_SHA256 example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"; do
    set -- $m
    local mod=$1 ver=$2 sum=$3 f
    shift 3
    curl -fsSL --retry 3 -o "$tmp/m.zip" "$proxy/$mod/@v/$ver.zip" ||
      { rm -rf "$tmp"; printf 'install-test-deps: cannot fetch %s@%s from %s\n' "$mod" "$ver" "$proxy" >&2; return 1; }
    echo "$sum  $tmp/m.zip" | sha256sum -c --quiet - ||
      { rm -rf "$tmp"; printf 'install-test-deps: %s@%s zip does not match its pinned sha256\n' "$mod" "$ver" >&2; return 1; }
    for f in "$@"; do
      "$venv/bin/python" -c 'import sys, zipfile; open(sys.argv[3], "wb").write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))' \
        "$tmp/m.zip" "$mod@$ver/$f" "$crds/${f##*/}" ||
        { rm -rf "$tmp"; printf 'install-test-deps: %s not in %s@%s\n' "$f" "$mod" "$ver" >&2; return 1; }
    done
  done
  rm -rf "$tmp"
  printf '%s\n' "$want" >"$stamp"
}

rp_install_deploy_validators
# ---- end rp_install_deploy_validators -------------------------------------
