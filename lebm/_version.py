"""The library version (imported by anything that records it; imports nothing)."""

__version__ = "0.2.0"
