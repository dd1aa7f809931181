"""Reusable contract suites: one per extension point, run against every implementation."""
