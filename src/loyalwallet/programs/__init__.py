"""Program kinds (bonus, discount, stamp), their pure rules, tiers and card design."""
