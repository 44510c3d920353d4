#!/usr/bin/env bash
# Set up everything datakeep's demo and test suite need, on a fresh Debian machine that has only
# python3, git and apt. Safe to run again: each step is skipped when its result is already there, so
# `scripts/test.sh` and `scripts/demo.sh` can call it every time at almost no cost.
#
#   1. apt packages from scripts/apt-packages.txt (PostgreSQL, bubblewrap, ...), installed only if missing;
#   2. .venv with `pip install -e '.[dev]'`, redone only when pyproject.toml changes;
#   3. the original Gradient CLIs under .tools/, for the server compatibility tests:
#        .tools/gradient-2.99.3   the last release (datasets, storageProviders)
#        .tools/gradient-1.11.0   the last release with `jobs create --dataset` and `experiments run --dataset...`
#      Skip them with DATAKEEP_SKIP_TOOLS=1 (the compatibility tests then skip, saying why).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
PIP_FLAGS=(--disable-pip-version-check --no-input -q)

log() { printf '[setup] %s\n' "$*" >&2; }

# pip_in VENV ARGS...: pip, quiet, without this machine's noise about absent local mirrors.
pip_in() {
    local venv="$1"
    shift
    "$venv/bin/python" -m pip "$1" "${PIP_FLAGS[@]}" "${@:2}" 2> >(grep -v '^WARNING: Location' >&2)
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        log "need root for: $*"
        return 1
    fi
}

# ---------------------------------------------------------------------------------------------------
# 1. apt packages
# ---------------------------------------------------------------------------------------------------
want=()
if [ -f scripts/apt-packages.txt ]; then
    while IFS= read -r line || [ -n "$line" ]; do
        pkg="${line%%#*}"
        pkg="$(echo "$pkg" | tr -d '[:space:]')"
        [ -n "$pkg" ] && want+=("$pkg")
    done < scripts/apt-packages.txt
fi
# What building the venvs needs, asked for only when it is really missing: Debian's own python3
# has no venv/ensurepip without python3-venv, and PyYAML 5.4.1 (for gradient 1.11.0) compiles.
if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    want+=("python3-venv")
fi
if [ "${DATAKEEP_SKIP_TOOLS:-0}" != "1" ]; then
    command -v gcc >/dev/null 2>&1 || want+=("gcc")
    if ! "$PYTHON" -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
        want+=("python3-dev")
    fi
fi

missing=()
for pkg in "${want[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
    [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---------------------------------------------------------------------------------------------------
# 2. the project's virtual environment
# ---------------------------------------------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
    log "creating .venv"
    "$PYTHON" -m venv .venv
fi
stamp=".venv/.datakeep-setup"
fingerprint="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$fingerprint" ] \
    || ! .venv/bin/python -c 'import datakeep' >/dev/null 2>&1; then
    log "pip install -e '.[dev]'"
    pip_in .venv install -e '.[dev]'
    printf '%s\n' "$fingerprint" > "$stamp.tmp" && mv -f "$stamp.tmp" "$stamp"
fi

# ---------------------------------------------------------------------------------------------------
# 3. the original Gradient CLIs, each in its own venv (their pins clash with ours and with each other)
# ---------------------------------------------------------------------------------------------------
install_tool() { # install_tool NAME STAMP: (re)installs .tools/NAME unless STAMP says it is done
    local dir=".tools/$1" want_stamp="$2"
    if [ "$(cat "$dir/.datakeep-setup" 2>/dev/null || true)" = "$want_stamp" ] && [ -x "$dir/bin/gradient" ]; then
        return 1
    fi
    log "installing $dir"
    rm -rf "$dir"
    "$PYTHON" -m venv "$dir"
}
mark_tool() { # mark_tool NAME STAMP: checks the CLI starts, then records that NAME is done
    ".tools/$1/bin/gradient" version >/dev/null 2>&1
    printf '%s\n' "$2" > ".tools/$1/.datakeep-setup"
}

if [ "${DATAKEEP_SKIP_TOOLS:-0}" != "1" ]; then
    mkdir -p .tools
    t=gradient-2.99.3 st="gradient==2.99.3 click==8.1.7 v1"
    if install_tool "$t" "$st"; then
        pip_in ".tools/$t" install gradient==2.99.3 click==8.1.7
        mark_tool "$t" "$st"
    fi
    # gradient 1.11.0 pins PyYAML 5.4.1, whose sdist does not build under Cython 3 or in an isolated
    # build environment. Both CLIs need a click older than 8.2, which changed how unset options look.
    t=gradient-1.11.0 st="gradient==1.11.0 click==8.1.7 pyyaml==5.4.1 v1"
    if install_tool "$t" "$st"; then
        pip_in ".tools/$t" install 'cython<3' wheel 'setuptools<70'
        pip_in ".tools/$t" install --no-build-isolation pyyaml==5.4.1
        pip_in ".tools/$t" install gradient==1.11.0 click==8.1.7 pyyaml==5.4.1
        mark_tool "$t" "$st"
    fi
fi

log "ready: .venv$( [ "${DATAKEEP_SKIP_TOOLS:-0}" = "1" ] || printf ', .tools/gradient-2.99.3, .tools/gradient-1.11.0')"
