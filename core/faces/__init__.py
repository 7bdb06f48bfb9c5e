"""faces stage."""
