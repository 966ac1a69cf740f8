"""One module per tab; each exposes ``render(settings)``."""
