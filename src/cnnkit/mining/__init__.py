"""cnnkit.mining."""
