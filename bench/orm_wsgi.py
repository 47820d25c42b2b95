"""gunicorn's entry for the webhook's write path through the ORM (bench/write_path.py):
`gunicorn bench.orm_wsgi` serves the app with bench/orm_write_path.py's replacements."""

from dashboard.wsgi import application

# isort: split
# After the app: the replacements import the models, which need Django set up.
import bench.orm_write_path  # noqa: F401 - replaces the write path when imported

__all__ = ["application"]
