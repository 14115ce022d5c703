"""Clients for a takeoff server: Python clients (async and blocking), `takeoff chat`, one-shot
commands."""
