"""HTTP views: read input, call the service, return data."""
