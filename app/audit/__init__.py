"""The domain: audit events, their normalisation, storage queries and renderings."""
