"""Journal schema revisions (Alembic ignores this file)."""
