"""Access backend tests: password hashing, static users and the bootstrap admin."""
