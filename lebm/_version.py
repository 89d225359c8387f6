"""The library version (imported by anything that records it; imports nothing)."""

__version__ = "0.1.0"
