"""cnnkit.data."""
