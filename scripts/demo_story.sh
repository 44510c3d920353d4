#!/usr/bin/env bash
# Seed 002's story with `datakeep` in place of `gradient`, on the embedded default (SQLite and a
# local storage provider under a throw-away DATAKEEP_HOME): create a dataset, create a committed
# version from a folder, tag it, list datasets, versions and files, and show the details.
# scripts/demo.sh calls this with the project's venv on PATH. DATAKEEP_DEMO_KEEP=1 keeps the data home.
set -euo pipefail

# The embedded default, whatever this shell points at.
unset DATAKEEP_API_URL DATAKEEP_API_KEY DATAKEEP_DATABASE_URL

WORK="$(mktemp -d "${TMPDIR:-/tmp}/datakeep-demo.XXXXXX")"
if [ "${DATAKEEP_DEMO_KEEP:-0}" = "1" ]; then
    echo "(keeping $WORK)" >&2
else
    trap 'rm -rf "$WORK"' EXIT
fi
export DATAKEEP_HOME="$WORK/home"
cd "$WORK"

# Print each command as the seed does, then run it.
run() {
    printf '\n$ datakeep'
    printf ' %q' "$@"
    printf '\n'
    datakeep "$@"
}

mkdir some-data
printf 'hello world\n' > some-data/hello.txt   # the seed's 12-byte hello.txt

out="$(run datasets create --name test)"
printf '%s\n' "$out"
ID="$(printf '%s\n' "$out" | sed -n 's/^Created dataset: \(ds[0-9a-z]*\)$/\1/p')"

out="$(run datasets versions create --id="$ID" --source-path=./some-data/)"
printf '%s\n' "$out"
VERSION="$(printf '%s\n' "$out" | sed -n "s/^Committed dataset version: $ID:\([0-9a-z]*\)$/\1/p")"
[ -n "$VERSION" ] || { echo "demo: the version was not committed" >&2; exit 1; }

run datasets tags set --id="$ID:$VERSION" --name=prod
run datasets list
run datasets versions list --id="$ID"
run datasets details --id="$ID"
run datasets versions details --id="$ID:prod"
run datasets files list --id="$ID:$VERSION"

# A second version: only what changed is stored again; latest moves, the tag stays.
printf 'hello again\n' > some-data/hello2.txt
run datasets versions create --id="$ID" --source-path=./some-data/ --message="add hello2.txt"
run datasets versions diff --id="$ID:prod" --to="$ID:latest"
run datasets files list --id="$ID:latest"
run datasets files get --id="$ID:prod" --target-path=./restored
printf '\n$ cat restored/hello.txt\n'
cat restored/hello.txt

printf '\ndemo finished: every command above ran against %s\n' "$DATAKEEP_HOME" >&2
