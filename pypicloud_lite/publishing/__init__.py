"""Trusted Publishing (OIDC): CI jobs exchange their identity tokens for short-lived upload tokens."""
