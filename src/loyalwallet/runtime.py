"""Starting a process: logging, settings, the database engine and every table.

Every command starts here (`loyalwallet ...` and its sub-commands), so none meets a
table whose foreign key points into a part that was not imported yet.
"""

from __future__ import annotations

from pathlib import Path

from loyalwallet import db
from loyalwallet.config import Settings, configure, load_settings
from loyalwallet.ops.logs import configure_logging


def start(data_dir: Path | None = None) -> Settings:
    """Configure logging, the settings (from the environment) and the database engine."""
    configure_logging()  # LOYALWALLET_LOG_FORMAT=json: one JSON object a line
    from loyalwallet import models  # noqa: F401  every table (imported here: `--help` needs none)

    settings = configure(load_settings(data_dir))
    db.init_engine(settings)
    return settings
