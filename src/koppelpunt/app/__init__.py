"""The use cases: each module runs one task in its own transactions.

Receiving a message (receive.py, with group_commit.py), the signaleringen derived from pupil
state (derived.py, including the peildatum run), parked records (parked.py), the scheduler that
runs the periodic ones (scheduler.py), and the operators' work: replay, offsets and lag,
rejected messages, failing signaleringen, retention, inzage and the audit log.

They wire the pure pipeline (pipeline/) to the repositories (store/), Kafka (kafka/) and the
woongemeente lookup (lookup/). The CLI (cli/) and the HTTP API (api/) are thin layers over them.
See docs/architecture.md.
"""
