"""``python -m neurodeploy`` runs the command-line interface (:func:`neurodeploy.cli.main`:
one line and exit 2 on an error a user can cause, 130 on Ctrl-C)."""

import sys

try:
    from neurodeploy.cli import main
except KeyboardInterrupt:  # Ctrl-C while torch & co. import: no traceback either
    print("neurodeploy: interrupted (Ctrl-C)", file=sys.stderr)
    raise SystemExit(130) from None  # 128 + SIGINT, as cli.EXIT_INTERRUPTED

raise SystemExit(main())
