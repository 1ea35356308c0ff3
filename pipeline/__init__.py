"""lookthrough: the monitoring center's pipeline for look-through supervision reports."""

__version__ = "0.1.0"
