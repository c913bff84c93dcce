"""cnnkit.tasks."""
