"""Autoscaling rehearsal: the shipped chart's autoscaling driving real workers on one machine."""
