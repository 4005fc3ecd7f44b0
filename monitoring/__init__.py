"""Monitoring as code: the dashboards' generator and its Grafana building blocks.

  build_dashboards.py  the three dashboards, written to helm/monitoring/dashboards/
  grafana.py           panels, queries, variables and layout the dashboards share
"""
