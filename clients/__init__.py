"""Clients for a takeoff server: an async Python client, a sync wrapper, the CLI chat and one-shot commands."""
