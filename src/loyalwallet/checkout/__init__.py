"""Quote, purchase and refund: the use cases a POS calls."""
