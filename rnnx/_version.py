"""The package version, on the ground floor so that any module may read it without importing the
package root (``models/io.py`` writes it into saved models)."""

__version__ = "0.1.0"
