"""Elasticsearch poller: brings the audit documents Calico keeps in Elasticsearch into the store.

`audit-timeline poll` (app/poller/process.py); also runs inside `serve` when ES_URL is set.
"""
