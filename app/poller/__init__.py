"""Elasticsearch poller: brings the audit documents Calico keeps in Elasticsearch into the store.

`python -m app.poller` or `audit-timeline poll`; also runs inside `serve` when ES_URL is set.
"""
