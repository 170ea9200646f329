"""Code the tests share: builders, servers, harnesses, sample data. Tests and conftests import it from here only."""
