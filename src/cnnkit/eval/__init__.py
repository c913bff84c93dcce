"""cnnkit.eval."""
