#!/usr/bin/env bash
# Commissioning dry run of the example environment, start to finish, in a scratch folder:
# mirror its PVs in a soft IOC, preflight them, install the Badger plugin, rehearse the
# routine read-only, then run it in rehearsal mode: it writes only to that soft IOC, proved by
# the id its banner printed. Finishes by itself and leaves no process behind.
# Needs: pip install 'badger-epics-pva[badger]'   (PYTHON overrides the interpreter)
set -euo pipefail
python="${PYTHON:-python3}"
here="$(cd "$(dirname "$0")" && pwd)"
env_dir="$here/environments/demo"
work="$(mktemp -d)"
ioc=""
cleanup() {
    if [ -n "$ioc" ]; then kill "$ioc" 2>/dev/null || true; wait "$ioc" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "== 1. serve a soft IOC mirroring the environment's PVs"
"$python" -m epics_pva.badger.dryrun "$env_dir" --time-scale 5 --serve -- --export --quiet --duration 300 \
    > "$work/ioc.env" &
ioc=$!
for _ in $(seq 100); do grep -q '^# ready' "$work/ioc.env" && break; sleep 0.1; done
grep -q '^# ready' "$work/ioc.env" || { echo "the soft IOC did not start" >&2; exit 1; }
# shellcheck disable=SC1091
. "$work/ioc.env"   # the EPICS_PVA_* settings a client needs and the soft IOC's id, as it printed them
echo "   soft IOC id: $EPICS_PVA_INTERFACE_REHEARSAL_ID"

echo "== 2. preflight: every PV there, nothing written"
"$python" -m epics_pva.preflight --env "$env_dir" --update-time 2

echo "== 3. install the interface plugin and the environment into a Badger plugin root"
"$python" -m epics_pva.badger install "$work/plugins" --environment "$env_dir"

echo "== 4. rehearse read-only: the routine runs, no put is sent"
EPICS_PVA_INTERFACE_READ_ONLY=1 "$python" -m epics_pva.badger run demo \
    --plugin-root "$work/plugins" --workdir "$work/badger" --evaluations 3

echo "== 5. run it in rehearsal mode: puts reach only the soft IOC with that id"
"$python" -m epics_pva.badger run demo --rehearsal \
    --plugin-root "$work/plugins" --workdir "$work/badger" --evaluations 5

echo "== 6. the same rehearsal with the id of another machine is refused before any put"
if EPICS_PVA_INTERFACE_REHEARSAL_ID=00000000000000000000000000000000 "$python" -m epics_pva.badger run demo \
    --rehearsal --plugin-root "$work/plugins" --workdir "$work/badger" --evaluations 2 2> "$work/refused.txt"; then
    echo "a rehearsal reached a server that is not its soft IOC" >&2; exit 1
fi
grep -m1 "not the rehearsal's soft IOC" "$work/refused.txt"
