"""Small synthetic language tasks for language-model alignment experiments (CPU-sized, no downloads)."""
