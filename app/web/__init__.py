"""The HTML dashboard: timeline, event detail with diffs, object history (server-rendered)."""
