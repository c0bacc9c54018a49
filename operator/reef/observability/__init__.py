"""Metrics, structured logs and the fixed catalogue of Event reasons."""
