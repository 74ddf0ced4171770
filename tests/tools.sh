#!/usr/bin/env bash
# make tools: install the Debian packages whose programs the full suite drives, where missing.
# A no-op when every program is on PATH. The same list is TOOLS in tests/support/tools.py.
set -euo pipefail

# program  Debian package
tools="
pgrep procps
promtool prometheus
prometheus prometheus
chromium chromium
openssl openssl
wrk wrk
podman podman
debootstrap debootstrap
"

missing_packages() {
  local program package wanted=()
  while read -r program package; do
    [ -n "$program" ] || continue
    command -v "$program" >/dev/null && continue
    case " ${wanted[*]-} " in *" $package "*) ;; *) wanted+=("$package") ;; esac
  done <<<"$tools"
  echo "${wanted[*]-}"
}

read -r -a missing <<<"$(missing_packages)"
if [ ${#missing[@]} -eq 0 ]; then
  echo "tools: all present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "tools: missing Debian packages: ${missing[*]}; run as root (sudo make tools)" >&2
  exit 1
fi
echo "tools: installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"

read -r -a still <<<"$(missing_packages)"
if [ ${#still[@]} -ne 0 ]; then
  echo "tools: installed, but programs of ${still[*]} are still not on PATH" >&2
  exit 1
fi
