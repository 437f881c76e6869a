#!/bin/sh
# Entrypoint of the example TTS API image.
set -e
exec python3 -m f5_tts_api "$@"
