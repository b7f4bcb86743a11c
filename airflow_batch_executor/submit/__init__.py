"""Sending: the rate-limited submit threads and the token bucket."""
