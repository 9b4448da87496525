#!/usr/bin/env bash
# Installs the Debian 12 packages gmud needs that this machine lacks.
# As root it runs apt-get; otherwise it prints the exact command and fails.
#   scripts/install-deps.sh          build, test, fuzz and benchmark dependencies
set -euo pipefail

packages=(
  cmake make gcc g++ pkg-config python3   # build and test tools (g++: the C++ header test)
  clang libclang-rt-14-dev            # second compiler, sanitizers, libFuzzer runtime
  libuv1-dev                          # event loop
  libjansson-dev                      # JSON (docs/DESIGN.md says why)
  libssl-dev                          # TLS (OpenSSL 3)
  openssl                             # openssl(1): tests check certificates and handshakes
  prometheus                          # promtool: the metrics test validates the exposition
  tshark                              # the Wireshark dissector's test
  redis-server libhiredis-dev         # clustering (issue 13): the server and its client library
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

cmd="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "gmud needs these Debian packages: ${missing[*]}" >&2
  echo "Install them as root, then run this again:" >&2
  echo "  sudo sh -c '$cmd'" >&2
  exit 1
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer no without a prompt.
echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections 2>/dev/null || true
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
