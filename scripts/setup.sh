#!/usr/bin/env bash
# Set up everything VoiceVibe needs on a fresh machine: system packages (Linux: apt; macOS with
# --test: Homebrew), a virtualenv in .venv, llama-cpp-python built the right way for this CPU, the app.
#   scripts/setup.sh          app only
#   scripts/setup.sh --test   app + test tools (espeak-ng, PulseAudio, Xvfb, JACK for real MIDI ports, pytest...)
#   scripts/setup.sh --which-python   print the Python a new .venv would use (and why others were passed over)
# Once set up, it touches no network: what was installed is stamped in $VENV/.voicevibe-setup (keyed
# by pyproject.toml, this script, the Python and the llama.cpp build), and pip runs only when that changed.
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_TEST=0; [ "${1:-}" = "--test" ] && WITH_TEST=1
WHICH_PYTHON=0; [ "${1:-}" = "--which-python" ] && WHICH_PYTHON=1
MODE=app; [ $WITH_TEST = 1 ] && MODE=test
VENV=${VENV:-.venv}
STAMP="$VENV/.voicevibe-setup"
LLAMA_VERSION=0.3.36
MAC_PYTHONS="/Library/Frameworks/Python.framework/Versions/3.12/bin/python3.12
/Library/Frameworks/Python.framework/Versions/3.11/bin/python3.11
/Library/Frameworks/Python.framework/Versions/3.10/bin/python3.10
/opt/homebrew/bin/python3.12"

is_mac() { [ "$(uname -s)" = Darwin ]; }

pick_python() {
  # voicevibe/pycheck.py (standard library only) says whether a Python will do, and why not.
  # On a Mac python.org's Pythons come first: they ship Tk 8.6 (Homebrew's python-tk links Tk 9).
  local candidates="${PYTHON:-}" why="" out py
  is_mac && candidates="$candidates $MAC_PYTHONS"
  for py in $candidates python3.12 python3.11 python3.10 python3; do
    command -v "$py" >/dev/null 2>&1 || continue
    if out=$("$py" voicevibe/pycheck.py 2>&1); then
      echo "$py"; echo "using $py: $out" >&2; return
    fi
    why="$why
  $py: $out"
  done
  echo "error: no usable Python found (VoiceVibe needs Python 3.10-3.12 with Tk$(is_mac && echo ', arm64, macOS 13.5+'))$why" >&2
  if is_mac; then
    echo "  Install Python 3.12 from https://www.python.org/downloads/macos/ (it ships Tk 8.6), then run make run again." >&2
  else
    echo "  Install python3.12 (or 3.10/3.11) with Tk (apt install python3.12 python3-tk), then run setup again." >&2
  fi
  exit 2
}

system_packages() {
  if is_mac; then
    if [ $WITH_TEST = 1 ]; then brew_test_tools; fi
    return 0  # the app needs no system package: sounddevice and soundfile wheels bundle their libraries
  fi
  command -v apt-get >/dev/null || return
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

brew_test_tools() {
  # The tests' tools on macOS (PulseAudio, Xvfb and xdotool are Linux-only: those tests skip on a Mac).
  local missing="" tool formula
  for pair in espeak-ng:espeak-ng sox:sox ffmpeg:ffmpeg oscdump:liblo; do
    tool=${pair%%:*}; formula=${pair#*:}
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $formula"
  done
  [ -z "$missing" ] && return
  if ! command -v brew >/dev/null 2>&1; then
    echo "warning: the tests need$missing; install Homebrew (https://brew.sh) or these tools, or those tests fail" >&2
    return
  fi
  echo "installing with Homebrew:$missing"
  brew install $missing
}

llama_args() {
  # The default Linux build (-march=native) crashes on CPUs that report AMX (a ggml bug); on macOS
  # the default build (Metal) is right.
  [ "$(uname -s)" = Linux ] && echo "-DGGML_NATIVE=OFF" || true
}

key_of() {  # a short hash of stdin, by the venv's Python (sha1sum is not on every Mac); 12 hex digits, as
  # `sha1sum | cut -c1-12` made them before, so wheels already built keep their folder
  "$VENV/bin/python" -c 'import hashlib, sys; print(hashlib.sha1(sys.stdin.buffer.read()).hexdigest()[:12])'
}

xcode_tools() {  # llama-cpp-python has no macOS wheel: pip compiles it, which needs the command line tools
  is_mac || return 0
  local dir; dir=$(xcode-select -p 2>/dev/null) && [ -d "$dir" ] && return 0
  echo "error: the Xcode command line tools are missing: llama-cpp-python $LLAMA_VERSION is built from source on macOS" >&2
  echo "  (with Metal, a few minutes), and that needs their compiler." >&2
  echo "  Install them with: xcode-select --install (a dialog opens; then run make run again)" >&2
  exit 2
}

llama_cpp() {
  # pip's wheel cache ignores CMAKE_ARGS; so build our own wheel once, keyed by the flags, outside the
  # clone, and install from it.
  local args; args=$(llama_args)
  if "$VENV/bin/python" -c "import llama_cpp, sys; sys.exit(llama_cpp.__version__ != '$LLAMA_VERSION')" 2>/dev/null; then
    return
  fi
  local key; key=$(printf '%s %s %s' "$LLAMA_VERSION" "$args" "$("$VENV/bin/python" -c 'import sys; print(sys.version_info[:2])')" | key_of)
  local wheels="${XDG_CACHE_HOME:-$HOME/.cache}/voicevibe/wheels/$key"
  if ! ls "$wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    xcode_tools
    echo "building llama-cpp-python $LLAMA_VERSION (CMAKE_ARGS='$args'; 4-6 min on 2 cores, once)"
    mkdir -p "$wheels"
    CMAKE_ARGS="$args" "$VENV/bin/pip" wheel -q --no-cache-dir --no-deps -w "$wheels" "llama-cpp-python==$LLAMA_VERSION"
  fi
  "$VENV/bin/pip" install -q --no-deps "$wheels"/llama_cpp_python-*.whl
}

setup_key() {  # everything an install depends on
  { "$VENV/bin/python" -c 'import sys, platform; print(sys.version, platform.machine())'
    cat pyproject.toml scripts/setup.sh; echo "$LLAMA_VERSION $(llama_args)"; } | key_of
}

installed() {  # the stamp says this key was installed in this mode (a test install covers the app)
  [ -f "$STAMP" ] || return 1
  local line; line=$(cat "$STAMP")
  [ "$line" = "$1 test" ] || { [ $MODE = app ] && [ "$line" = "$1 app" ]; }
}

if [ $WHICH_PYTHON = 1 ]; then pick_python; exit 0; fi
system_packages
if [ -x "$VENV/bin/python" ] && ! venv_ok=$("$VENV/bin/python" voicevibe/pycheck.py 2>&1); then
  echo "error: $VENV was made with a Python VoiceVibe cannot use:$venv_ok" >&2
  echo "  remove it (rm -rf $VENV) and run setup again: a supported Python will be picked" >&2
  exit 2
fi
if [ ! -x "$VENV/bin/python" ]; then
  PY=$(pick_python)
  "$PY" -m venv "$VENV"
fi
# macOS asks before an app reads Documents, Desktop, Downloads or iCloud Drive: warn about a checkout there
"$VENV/bin/python" voicevibe/pycheck.py --place "$PWD" "$VENV" || true
KEY=$(setup_key)
if installed "$KEY"; then
  echo "setup: up to date ($("$VENV/bin/python" --version), $VENV, $MODE): no install needed"
  exit 0
fi
rm -f "$STAMP"
"$VENV/bin/pip" install -q --upgrade pip
llama_cpp
if [ $WITH_TEST = 1 ]; then "$VENV/bin/pip" install -q -e '.[test]'; else "$VENV/bin/pip" install -q -e .; fi
echo "$KEY $MODE" > "$STAMP"
echo "setup done: $("$VENV/bin/python" --version), $VENV"
