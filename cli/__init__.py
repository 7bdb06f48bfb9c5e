"""Command line: ``python -m ip_to_portrait <command>``."""
