"""Guests: PII encrypted at rest, found by a blind index of the phone; consent records."""
