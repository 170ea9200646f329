"""Storage backend tests: one contract suite run against every implementation."""
