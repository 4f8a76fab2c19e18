"""The local Bybit v5 exchange: REST, the public linear stream and the private stream on one
loopback port, a seeded order-flow market per symbol, a matching engine for the simulated
account, Bybit's rate limits, and fault injection. See ``docs/sim-exchange.md``.

    sim = SimExchange(symbols=10, seed=1, api_key="sim-key", api_secret="sim-secret")
    await sim.start(host="127.0.0.1", port=0)
    ...
    await sim.stop()
"""

from pysrc.sim.faults import Faults
from pysrc.sim.server import SimExchange

__all__ = ["Faults", "SimExchange"]
