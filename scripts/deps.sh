# Shared by scripts/demo and scripts/test: install what runpool needs.
# Sourced, not run. Versions are pinned to Debian 12 (bookworm) series; a
# security update inside a series is accepted, a different series is not.

RP_APT_PACKAGES=(
  "build-essential"
  "cmake=3.25.*"
  "ninja-build"
  "pkg-config"
  "librdkafka-dev=2.0.2*"
  "libcjson-dev=1.7.15*"
  "libcmocka-dev=1.1.5*"
  "libcurl4-openssl-dev=7.88.1*"
  "libssl-dev=3.0.*"
  "libmicrohttpd-dev=0.9.75*"
  "libarchive-dev=3.6.2*"
  "libzstd-dev=1.5.4*"
  # scripts/build-librdkafka: what Debian's librdkafka1 is built with
  # (libssl-dev, libzstd-dev and zlib1g-dev come with the lines above)
  "liblz4-dev=1.9.4*"
  "libsasl2-dev=2.1.28*"
  # scripts/build-libarchive and build-librdkafka (fetch and unpack)
  "curl"
  "xz-utils"
  "patch"
)

rp_log() { printf '==> %s\n' "$*" >&2; }

# Install the Debian packages that are missing (no-op when all are there).
rp_install_debian() {
  local missing=() spec name
  for spec in "${RP_APT_PACKAGES[@]}"; do
    name=${spec%%=*}
    dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$spec")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  rp_log "installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# Configure and build one build directory. $1 = dir, rest = cmake args.
rp_build() {
  local dir=$1; shift
  rp_librdkafka
  cmake -S "$RP_ROOT" -B "$dir" -G Ninja "$@" >/dev/null
  cmake --build "$dir" -- -j"$(nproc)"
}

# For scripts/build-libarchive and build-librdkafka: download URL to FILE
# and check it against its pinned sha256 before anything uses it.
rp_fetch_pinned() { # URL SHA256 FILE
  curl -sSfL --retry 3 -o "$3" "$1"
  echo "$2  $3" | sha256sum -c --quiet - \
    || { echo "$(basename "$3"): does not match its pinned sha256 ($1)" >&2; return 1; }
}

# Apply an unpacked Debian source package's debian/patches/series to SRC.
rp_apply_debian_patches() { # SRC
  local p _
  while read -r p _; do
    case $p in ''|'#'*) continue ;; esac
    patch -s -p1 -d "$1" <"$1/debian/patches/$p"
  done <"$1/debian/patches/series"
}

# The executor image's libarchive (scripts/build-libarchive): Debian
# bookworm's own source package, built with only pax/tar and no optional
# libraries, so the image carries no libxml2/ICU/libstdc++. The version is
# the one libarchive13 from bookworm(-security) has; the sha256s are the
# .dsc's (Checksums-Sha256), checked before anything is unpacked.
RP_LIBARCHIVE_DEB_VERSION="3.6.2-1+deb12u5"
RP_LIBARCHIVE_ORIG_URL="http://deb.debian.org/debian/pool/main/liba/libarchive/libarchive_3.6.2.orig.tar.xz"
RP_LIBARCHIVE_ORIG_SHA256="9e2c1b80d5fbe59b61308fdfab6c79b5021d7ff4ff2489fb12daf0a96a83551d"
RP_LIBARCHIVE_DEBIAN_URL="http://deb.debian.org/debian-security/pool/updates/main/liba/libarchive/libarchive_3.6.2-1+deb12u5.debian.tar.xz"
RP_LIBARCHIVE_DEBIAN_SHA256="5b32794076e9b0d8cd74fd2c453340b72c6362188f40fa1aac96304cb5683315"

# The librdkafka runpool links (scripts/build-librdkafka): Debian bookworm's
# source package 2.0.2-1, the version librdkafka-dev has, with Debian's
# patches and the upstream main-loop fix of scripts/patches/. sha256s from
# the .dsc (Checksums-Sha256).
RP_LIBRDKAFKA_DEB_VERSION="2.0.2-1"
RP_LIBRDKAFKA_ORIG_URL="http://deb.debian.org/debian/pool/main/libr/librdkafka/librdkafka_2.0.2.orig.tar.gz"
RP_LIBRDKAFKA_ORIG_SHA256="f321bcb1e015a34114c83cf1aa7b99ee260236aab096b85c003170c90a47ca9d"
RP_LIBRDKAFKA_DEBIAN_URL="http://deb.debian.org/debian/pool/main/libr/librdkafka/librdkafka_2.0.2-1.debian.tar.xz"
RP_LIBRDKAFKA_DEBIAN_SHA256="1a78b7ab2f5098806cfaabf12e80984a5513780c99b1ec37d7cd59535aaef421"
# Where scripts/test, scripts/demo and bench/run build it, and where
# CMakeLists.txt looks for it first.
RP_LIBRDKAFKA_PREFIX_DEFAULT=".tools/librdkafka"

# Build (or find cached) the patched librdkafka; prints its prefix.
rp_librdkafka() {
  "$RP_ROOT/scripts/build-librdkafka" "$RP_ROOT/$RP_LIBRDKAFKA_PREFIX_DEFAULT" >/dev/null
}
