"""Bringing an existing customer base in: CSV import and plastic card code ranges."""
