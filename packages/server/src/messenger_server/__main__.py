"""``python -m messenger_server`` is ``messenger-server``."""

from messenger_server.cli import main

raise SystemExit(main())
