"""audit-timeline: Kubernetes API-server audit logs as a resource-change timeline."""

from pathlib import Path

# The checkout: migrations/, templates/, static/ live beside app/.
PROJECT_DIR = Path(__file__).resolve().parent.parent
