"""Shared code: domain, ports, adapters, configuration and the local service stack."""
