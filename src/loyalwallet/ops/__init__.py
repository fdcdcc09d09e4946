"""Running an installation: metrics, readiness, JSON logs, doctor's checks, backups."""
