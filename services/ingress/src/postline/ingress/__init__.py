"""Postline ingress service."""
