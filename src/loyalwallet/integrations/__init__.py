"""Outside tills and loyalty engines (iiko, ...)."""
