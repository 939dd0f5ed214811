"""Serving gateway: models answered by alias, with canary split, shadow mirror and prediction log."""
