"""First-party crownguard plugins."""
