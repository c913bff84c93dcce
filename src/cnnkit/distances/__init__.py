"""cnnkit.distances."""
