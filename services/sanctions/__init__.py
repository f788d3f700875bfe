"""Party screening: sanctions lists in Redis, names normalised and indexed, fuzzy matches."""
