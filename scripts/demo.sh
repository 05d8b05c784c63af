#!/usr/bin/env bash
# Quick start 1: set up (idempotent) and transcribe the bundled sample with the default model.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/malsori transcribe examples/sample.wav "$@"
