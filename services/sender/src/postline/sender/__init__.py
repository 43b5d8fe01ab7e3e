"""Postline sender service."""
