"""messenger client."""
