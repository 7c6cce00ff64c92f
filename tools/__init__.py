"""Maintenance tools for the repository itself (not shipped with the program)."""
