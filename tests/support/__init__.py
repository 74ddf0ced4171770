"""Helpers shared by the test tiers: databases, service processes, polling."""
