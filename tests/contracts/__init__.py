"""Contract test suites: one per port; every adapter's test class subclasses the suite."""
