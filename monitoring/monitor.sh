#!/usr/bin/env bash
# `make monitor`: a local Prometheus scraping the local cluster (`make run`),
# with this project's rules. Runs in the foreground; Ctrl-C stops it.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# Rules and dashboards live in the Helm chart, their only home.
CHART_MONITORING="$(cd "$HERE/../helm/monitoring" && pwd)"
PORT="${PROMETHEUS_PORT:-9090}"
METRICS_PORT="${METRICS_PORT:-8080}"
DATA="${PROMETHEUS_DATA:-$HERE/../build/prometheus}"
mkdir -p "$DATA"
CONFIG="$DATA/prometheus.yml"
# Render a copy so a non-default metrics port needs no edit of the tracked file;
# rule paths become absolute because Prometheus resolves them next to the config.
sed -e "s#127.0.0.1:8080#127.0.0.1:${METRICS_PORT}#" -e "s#\.\./helm/monitoring/rules/\*.yml#${CHART_MONITORING}/rules/*.yml#" \
  "$HERE/prometheus.yml" > "$CONFIG"
promtool check config "$CONFIG" >/dev/null
cat <<MSG
Prometheus on http://127.0.0.1:${PORT} scraping http://127.0.0.1:${METRICS_PORT}/metrics
Grafana: add a Prometheus data source with URL http://127.0.0.1:${PORT}, then import
  ${CHART_MONITORING}/dashboards/*.json (choose that data source for \${datasource}).
Alerts: http://127.0.0.1:${PORT}/alerts
MSG
exec prometheus --config.file="$CONFIG" --storage.tsdb.path="$DATA/data" \
  --web.listen-address="127.0.0.1:${PORT}"
