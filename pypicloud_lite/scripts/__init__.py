"""Console entry points (ppc-*): thin wrappers that parse arguments and call the library."""
