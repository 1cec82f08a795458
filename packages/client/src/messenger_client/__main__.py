"""``python -m messenger_client``: the same as ``messenger-client``."""

from .cli import main

main()
