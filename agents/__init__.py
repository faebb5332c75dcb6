"""Faust agents: the stream logic that executes commands and keeps the status table."""
