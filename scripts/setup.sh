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
# Opt-in, not for CI (about 90 MB): more training speakers for the separator recipe
# (`train_separator --extra-speech`). klettres-data and ktuberling-data are installed; the two
# Asterisk prompt voices are only unpacked (dpkg-deb -x) into AMONGUS_EXTRA_SPEECH_ROOT
# (default ~/.cache/amongus/extra-speech): installing them would remove asterisk-core-sounds-es
# and -fr (they conflict), whose transcripts the corpus recipe and the default separator data need.
if [ "${AMONGUS_SEPARATOR_DATA:-0}" = 1 ] && [ "$WITH_APT" = 1 ] && command -v apt-get >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  for pkg in klettres-data ktuberling-data; do
    dpkg -s "$pkg" >/dev/null 2>&1 ||
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$pkg" >/dev/null
  done
  UNPACK="${AMONGUS_EXTRA_SPEECH_ROOT:-$HOME/.cache/amongus/extra-speech}"
  mkdir -p "$UNPACK"
  for pkg in asterisk-prompt-es-co asterisk-prompt-fr-armelle; do
    [ -d "$UNPACK/usr/share/doc/$pkg" ] && continue
    download="$(mktemp -d)"
    (cd "$download" && apt-get download -qq "$pkg") && dpkg-deb -x "$download"/*.deb "$UNPACK"
    rm -rf "$download"
  done
fi
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
EXTRAS="${EXTRAS:-corpus,train,app,docs,test}"
# The lock (the tested resolution) pins every package, the torch family above all: a newer
# torchaudio build does not load with an older torch. It also moves a kept .venv to the tested
# versions. Regenerate it with `python3 scripts/resolve.py lock`.
.venv/bin/python -m pip install -q -c requirements/constraints.txt -e ".[${EXTRAS}]"
