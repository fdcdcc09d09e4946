"""Cards, the points and stamps ledger, rewards and coupons."""
