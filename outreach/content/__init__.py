"""Content: the scripts, their spoken form and the pronunciation lexicon."""
