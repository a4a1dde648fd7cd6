"""Alembic migrations of the journal, shipped inside the package so that ``Journal.open`` can
upgrade any journal to the current schema without an ``alembic.ini`` on the server."""
