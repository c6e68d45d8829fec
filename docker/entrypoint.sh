#!/bin/sh
# Starts one Vaultline process in the container: director, transporter, or cli <command>.
set -e
tsx=file:///opt/vaultline/node_modules/tsx/dist/loader.mjs
case "${1:-director}" in
  director) cd /opt/vaultline && exec node --import "$tsx" apps/director/src/server.ts ;;
  transporter) cd /opt/vaultline && exec node --import "$tsx" apps/transporter/src/main.ts ;;
  cli) shift; exec node --import "$tsx" /opt/vaultline/apps/cli/src/main.ts "$@" ;;
  *) echo "usage: vaultline director | transporter | cli <command> …" >&2; exit 2 ;;
esac
