"""Example workflows beside the demo: modules a registry entry names."""
