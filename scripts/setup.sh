#!/usr/bin/env bash
# Set up everything amongus needs on a fresh Debian/Ubuntu machine: system packages (for the
# corpus recipe, telephone codecs and browser tests) and a virtual environment in .venv.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_APT="${WITH_APT:-1}"
APT_PACKAGES=(sox libsox-fmt-all libsndfile1 espeak-ng flite festival festvox-kallpc16k
  festvox-kdlpc16k festvox-us-slt-hts festvox-ru festvox-italp16k codec2
  asterisk-core-sounds-en-wav asterisk-core-sounds-es-wav asterisk-core-sounds-fr-wav
  asterisk-core-sounds-it-wav asterisk-core-sounds-ru-wav asterisk-prompt-it-menardi-wav
  tuxpaint-stamps-default chromium chromium-driver)
if [ "$WITH_APT" = 1 ] && command -v apt-get >/dev/null; then
  missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
EXTRAS="${EXTRAS:-corpus,train,app,docs,test}"
# The lock (the tested resolution) pins every package, the torch family above all: a newer
# torchaudio build does not load with an older torch. It also moves a kept .venv to the tested
# versions. Regenerate it with `python3 scripts/resolve.py lock`.
.venv/bin/python -m pip install -q -c requirements/constraints.txt -e ".[${EXTRAS}]"
