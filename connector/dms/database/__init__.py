"""The DMS database agency side: claims, write-back, idempotent inserts, the YAML mapping."""
