"""cnnkit.style."""
