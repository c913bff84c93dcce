"""cnnkit.store."""
