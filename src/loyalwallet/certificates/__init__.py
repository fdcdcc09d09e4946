"""Gift certificates with a balance: sold, spent in part or in full, refunded, expired."""
