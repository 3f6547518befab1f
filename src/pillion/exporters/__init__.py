"""Exporters: Prometheus metrics for apps that have none (JSON endpoints, StatsD),
and the app's own ``/metrics`` merged into Pillion's."""
