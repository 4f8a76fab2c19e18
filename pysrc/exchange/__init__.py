"""Exchange I/O: Bybit v5 REST and private stream (``bybit/``), rate limits on the native token
buckets (``limits``), circuit breakers (``breaker``), the retry policy (``retry``), instrument
metadata and exact rounding (``instruments``), call metrics (``metrics``) and the dead-letter
interface (``deadletter``). See docs/connectivity-rest.md.

Nothing is imported here so that ``pysrc.exchange.limits`` stays cheap to import."""
