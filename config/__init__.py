"""Process-wide configuration: the one settings object and logging set-up."""
