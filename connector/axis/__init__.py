"""The national side: the axis protocol, its client and a local simulator."""
