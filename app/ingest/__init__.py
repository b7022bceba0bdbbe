"""Ways in: the webhook endpoint and log-file import."""
