"""The two-agency lab and dev certificates for the demo, the benchmarks and the end-to-end
tests; never imported by the daemon."""
