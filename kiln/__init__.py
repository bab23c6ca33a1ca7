"""kiln: recipes in, signed and reproducible Python wheels out, served as a package index."""

__version__ = "0.1.0"
