"""The core: documents out (intake, package, send) and in (poll, fetch, verify, store,
acknowledge, deliver)."""
