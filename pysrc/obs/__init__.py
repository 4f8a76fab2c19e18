"""Observability: structured logs with a trace id (:mod:`pysrc.obs.log`) and Prometheus metrics
(:mod:`pysrc.obs.metrics`)."""
