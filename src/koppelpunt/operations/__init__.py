"""Operators' work: replay, offsets and lag, rejected messages, failing signaleringen, purge.

Each module wires the stores and Kafka for one task; the CLI (cli/) and the operator endpoints
(api/routes/beheer.py) are thin layers over these functions.
"""
