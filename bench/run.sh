#!/usr/bin/env bash
# The storage benchmark, one command: bench/run.sh [--quick] [python -m bench options...]
# Installs the peer tools (DVC, aws CLI, s5cmd, rclone, obstore) into bench/.venv on first use.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
peers="$here/.venv"
if [ ! -x "$peers/bin/rclone" ] || [ ! -x "$peers/bin/dvc" ]; then
    python3 -m venv "$peers"
    "$peers/bin/pip" install --quiet --disable-pip-version-check -r "$here/peers-requirements.txt"
fi
py="$repo/.venv/bin/python"
[ -x "$py" ] || py=python3
cd "$repo"
PYTHONPATH="$repo/src:$repo${PYTHONPATH:+:$PYTHONPATH}" exec "$py" -m bench --peers "$peers" "$@"
