"""Adapters: the ports implemented on real stores."""
