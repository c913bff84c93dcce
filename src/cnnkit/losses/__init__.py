"""cnnkit.losses."""
