"""Records: SQLAlchemy tables, connections and migrations."""

from pixelgate.db.database import Database
from pixelgate.db.migrate import upgrade

__all__ = ["Database", "upgrade"]
