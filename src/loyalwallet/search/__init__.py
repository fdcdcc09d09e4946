"""Finding guests by name although names are encrypted: a keyed token index."""
