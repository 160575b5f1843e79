#!/usr/bin/env bash
# Set up everything VoiceVibe needs on a fresh machine: system packages (Linux: apt),
# a virtualenv in .venv, llama-cpp-python built the right way for this CPU, the app.
#   scripts/setup.sh          app only
#   scripts/setup.sh --test   app + test tools (espeak-ng, PulseAudio, Xvfb, JACK for real MIDI ports, pytest...)
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_TEST=0; [ "${1:-}" = "--test" ] && WITH_TEST=1
VENV=${VENV:-.venv}
LLAMA_VERSION=0.3.36

pick_python() {
  for py in ${PYTHON:-} python3.12 python3.11 python3.13 python3.10 python3; do
    if command -v "$py" >/dev/null 2>&1 && "$py" - <<'PY' 2>/dev/null; then echo "$py"; return; fi
import sys, tkinter; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 13) else 1)
PY
  done
  echo "error: VoiceVibe needs Python 3.10-3.13 with Tk (macOS: brew install python@3.12 python-tk@3.12)" >&2
  exit 2
}

system_packages() {
  if [ "$(uname -s)" != Linux ] || ! command -v apt-get >/dev/null; then
    return  # macOS: sounddevice and soundfile wheels bundle their libraries
  fi
  local pkgs="libportaudio2 libsndfile1 python3-tk"
  [ $WITH_TEST = 1 ] && pkgs="$pkgs espeak-ng sox ffmpeg pulseaudio pulseaudio-utils libasound2-plugins xvfb xdotool imagemagick liblo-tools jackd2"
  local missing=""
  for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  [ -z "$missing" ] && return
  local sudo=""; [ "$(id -u)" != 0 ] && sudo="sudo"
  echo "installing system packages:$missing"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

llama_cpp() {
  # The default Linux build (-march=native) crashes on CPUs that report AMX (ggml bug), and
  # pip's wheel cache ignores CMAKE_ARGS; so build our own wheel once, keyed by the flags,
  # outside the clone, and install from it. On macOS the default (Metal) build is right.
  local args=""; [ "$(uname -s)" = Linux ] && args="-DGGML_NATIVE=OFF"
  if "$VENV/bin/python" -c "import llama_cpp, sys; sys.exit(llama_cpp.__version__ != '$LLAMA_VERSION')" 2>/dev/null; then
    return
  fi
  local key; key=$(printf '%s %s %s' "$LLAMA_VERSION" "$args" "$("$VENV/bin/python" -c 'import sys; print(sys.version_info[:2])')" | sha1sum | cut -c1-12)
  local wheels="${XDG_CACHE_HOME:-$HOME/.cache}/voicevibe/wheels/$key"
  if ! ls "$wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    echo "building llama-cpp-python $LLAMA_VERSION (CMAKE_ARGS='$args'; 4-6 min on 2 cores, once)"
    mkdir -p "$wheels"
    CMAKE_ARGS="$args" "$VENV/bin/pip" wheel -q --no-cache-dir --no-deps -w "$wheels" "llama-cpp-python==$LLAMA_VERSION"
  fi
  "$VENV/bin/pip" install -q --no-deps "$wheels"/llama_cpp_python-*.whl
}

system_packages
PY=$(pick_python)
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
llama_cpp
if [ $WITH_TEST = 1 ]; then "$VENV/bin/pip" install -q -e '.[test]'; else "$VENV/bin/pip" install -q -e .; fi
echo "setup done: $("$VENV/bin/python" --version), $VENV"
