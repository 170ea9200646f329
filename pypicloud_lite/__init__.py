"""pypicloud_lite: a private Python package index (PEP 503/691 simple API, legacy uploads)."""
