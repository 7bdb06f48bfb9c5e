"""post stage."""
