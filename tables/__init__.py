"""Faust table declarations."""
