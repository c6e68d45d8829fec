#!/bin/sh
# Starts one Vaultline process in the container: director, transporter, flr, or cli <command>.
set -e
tsx=file:///opt/vaultline/node_modules/tsx/dist/loader.mjs
case "${1:-director}" in
  director)
    cd /opt/vaultline
    if [ "$(id -u)" = 0 ]; then
      # The Director runs as vaultline with no capability. A data volume written by a version that ran it
      # as root is handed over once; the run directory it shares with the helper is the group's.
      data=${VAULTLINE_DATA_DIR:-/var/lib/vaultline}
      [ "$(stat -c %U "$data")" = vaultline ] || chown -R vaultline:vaultline "$data"
      run=${VAULTLINE_FLR_RUN_DIR:-/run/vaultline-flr}
      install -d -o vaultline -g vaultline -m 0770 "$run" && chown vaultline:vaultline "$run" && chmod 0770 "$run"
      exec setpriv --reuid vaultline --regid vaultline --init-groups --inh-caps -all --bounding-set -all -- node --import "$tsx" apps/director/src/server.ts
    fi
    exec node --import "$tsx" apps/director/src/server.ts ;;
  transporter)
    # What it writes to the shared data volume stays usable by the Director (same group).
    umask 0007
    cd /opt/vaultline && exec node --import "$tsx" apps/transporter/src/main.ts ;;
  flr) cd /opt/vaultline && exec node --import "$tsx" packages/flr/src/helper/main.ts ;;
  cli) shift; exec node --import "$tsx" /opt/vaultline/apps/cli/src/main.ts "$@" ;;
  *) echo "usage: vaultline director | transporter | flr | cli <command> …" >&2; exit 2 ;;
esac
