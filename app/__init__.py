"""audit-timeline: Kubernetes API-server audit logs as a resource-change timeline."""
