"""Planning: the county registry, market days, campaigns and the pure planner."""
