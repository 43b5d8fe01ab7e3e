"""Postline reports service."""
