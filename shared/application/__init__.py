"""Application services: submitting commands and executing them, on ports only."""
