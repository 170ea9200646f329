"""HTTP views: read input (forms), check permission (permissions), call the service; none imports another."""
