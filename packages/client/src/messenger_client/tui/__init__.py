"""The Textual app: ``run(config)`` opens it (see :mod:`messenger_client.tui.app`)."""
