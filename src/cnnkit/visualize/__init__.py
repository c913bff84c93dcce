"""cnnkit.visualize."""
