"""Pure-Python request scheduling: requests, their states, the batching policy, KV-slot bookkeeping.

Nothing in this package imports torch or asyncio (tests/unit/test_layering.py keeps it so).
"""
