"""Architectures, loaders and the manifest of weights. Nothing here downloads at run time."""
