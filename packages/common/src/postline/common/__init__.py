"""Shared code of every Postline service: settings, policy, broker, storage, telemetry."""
