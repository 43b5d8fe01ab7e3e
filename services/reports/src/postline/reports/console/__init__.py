"""The web console: server-rendered pages over the reports API's own queries (see README)."""
