#!/usr/bin/env bash
# Installs the Debian packages onegate needs; skips what is present.
#
#   scripts/deps.sh build [PACKAGE...]   what `make run` needs: build the gateway, run it and its demo
#   scripts/deps.sh test  [PACKAGE...]   that, plus what `make test` needs: unit tests, the clients,
#                                        back ends and browser the integration tests start
#
# Extra PACKAGE names are installed too (`make bench` passes its own). A new test tool goes into
# test_pkgs, so a first `make run` stays light.
set -euo pipefail

build_pkgs=(
  build-essential cmake pkg-config
  android-libboringssl-dev libevent-dev libpcre2-dev libconfig-dev libjansson-dev
  libnghttp2-dev curl
)
test_pkgs=(
  libgtest-dev clang libclang-rt-dev
  android-boringssl openssl python3 procps iproute2 pebble
  python3-prometheus-client python3-pil chromium fonts-dejavu-core libnss3-tools
  nghttp2-client python3-h2
  nginx haproxy
  keepalived nftables
)

group=${1:-}
case "$group" in
  build) pkgs=("${build_pkgs[@]}") ;;
  test) pkgs=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
  *)
    echo "usage: scripts/deps.sh build|test [PACKAGE...]" >&2
    exit 2
    ;;
esac
shift

missing=()
for p in "${pkgs[@]}" "$@"; do
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$st" == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
echo "deps: installing ${missing[*]}"
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
