"""``python -m connector`` runs the same command line as ``edxml-connector``."""

from connector.cli import main

raise SystemExit(main())
