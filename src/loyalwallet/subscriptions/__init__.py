"""Prepaid subscriptions: "20 cups a month", "a cup a day for 30 days"."""
