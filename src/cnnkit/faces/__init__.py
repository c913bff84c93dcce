"""cnnkit.faces."""
