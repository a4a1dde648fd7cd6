"""The local axis simulator: storage, routing, fault injection, samples, admin API (the sandbox)."""
