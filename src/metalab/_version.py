"""The package version, in one place (read by hatchling and by manifests)."""

__version__ = "0.2.0.dev0"
