"""Runs one Alembic command on herd: python run_alembic.py <sqlalchemy url> upgrade|downgrade <revision>.
Exits 0 when the command succeeded; else prints the error (with its SQLSTATE) and exits 1."""
import os
import sys

from alembic import command
from alembic.config import Config

url, action, revision = sys.argv[1:4]
config = Config()
config.set_main_option("script_location", os.path.dirname(os.path.abspath(__file__)))
config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
try:
    getattr(command, action)(config, revision)
except Exception as error:  # noqa: BLE001 - the test reads the message
    original = getattr(error, "orig", None)
    print(f"FAILED {getattr(original, 'sqlstate', None)}: {error}", file=sys.stderr)
    sys.exit(1)
