"""The emulated MNS topic API."""
