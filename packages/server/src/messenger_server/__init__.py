"""messenger server."""
