"""iiko: Wallet cards over a restaurant's own iiko loyalty, and iiko orders into our ledger."""
