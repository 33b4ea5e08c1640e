#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build and test attrib.
# Needs root (or sudo) only when something is missing. Python packages are
# Debian's (tools and tests call /usr/bin/python3), optional for `make test`.
set -euo pipefail
required=(gcc g++ make libpng-dev libjpeg62-turbo-dev zlib1g-dev)
optional=(python3-numpy python3-pil)
[ "${ATTRIB_WITH_TORCH:-0}" = 1 ] && optional+=(python3-torch python3-torchvision dataset-fashion-mnist)
# make reproduce: scene generation (tools/make_scenes.py) and the Fig. 7 plot
[ "${ATTRIB_WITH_REPRODUCE:-0}" = 1 ] && optional+=(python3-matplotlib dataset-fashion-mnist)
missing=()
for p in "${required[@]}" "${optional[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "attrib: installing ${missing[*]}" >&2
if [ "$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else
  echo "attrib: please install: apt-get install -y ${missing[*]}" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >&2
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
