"""Postline scheduler service."""
