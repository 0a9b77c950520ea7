"""Live play: the scheduler's runtime, exactly-once claims and player processes."""
