"""Webhooks: events and incoming mail POSTed, signed, to the policy's endpoints.

``fanout`` turns the events services publish into per-endpoint batches; ``poster`` runs one
endpoint's queue (batching, signing, retries through the delay queues); ``attempts`` records
every POST (ClickHouse, metrics); ``dispatcher`` puts them together for ``__main__``.
"""
