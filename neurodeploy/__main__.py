"""``python -m neurodeploy`` runs the command-line interface."""

from neurodeploy.cli import main

raise SystemExit(main())
