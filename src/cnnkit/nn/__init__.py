"""cnnkit.nn."""
