#!/bin/sh
# Starts one Vaultline process in the container.
set -e
cd /app
case "${1:-director}" in
  director) exec node --import tsx apps/director/src/server.ts ;;
  transporter) exec node --import tsx apps/transporter/src/main.ts ;;
  cli) shift; exec node --import tsx apps/cli/src/main.ts "$@" ;;
  *) echo "usage: vaultline director|transporter|cli …" >&2; exit 2 ;;
esac
