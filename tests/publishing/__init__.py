"""Trusted Publishing without the web layer: the issuers' keys."""
