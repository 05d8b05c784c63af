#!/usr/bin/env bash
# Regenerates examples/sample.wav from examples/sample.txt with espeak-ng (16 kHz mono).
# The committed file was made this way; espeak-ng's output is free to redistribute.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp --suffix .wav)
trap 'rm -f "$tmp"' EXIT
espeak-ng -v en-us -s 140 -w "$tmp" -f "$here/sample.txt"
ffmpeg -loglevel error -y -i "$tmp" -ar 16000 -ac 1 "$here/sample.wav"
