"""Merchants, their locations, staff, roles and API keys."""
