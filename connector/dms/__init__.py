"""Agency-side adapters: the outbox/inbox folder tree and the DMS database."""
