"""Postline bounce service."""
