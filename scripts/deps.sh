#!/usr/bin/env bash
# Installs the Debian packages onegate needs to build, test and demo; skips what is present.
set -euo pipefail
pkgs=(
  build-essential cmake pkg-config clang libclang-rt-dev
  android-libboringssl-dev android-boringssl
  libevent-dev libpcre2-dev libconfig-dev libgtest-dev
  curl openssl python3 procps iproute2
  python3-prometheus-client python3-pil chromium fonts-dejavu-core
)
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
