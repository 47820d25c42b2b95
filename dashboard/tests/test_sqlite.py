from pathlib import Path

from django.db.backends.sqlite3.base import DatabaseWrapper

from dashboard.sqlite import busy_timeout


def timeout_ms(connection: DatabaseWrapper) -> int:
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        return cursor.fetchone()[0]


def sqlite_connection(path: Path, init: str) -> DatabaseWrapper:
    # A connection of its own, so this runs on both test passes (webhooks use it on SQLite).
    return DatabaseWrapper(
        {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(path),
            "OPTIONS": {"init_command": init},
            "TIME_ZONE": None,
            "CONN_MAX_AGE": 0,
            "CONN_HEALTH_CHECKS": False,
            "AUTOCOMMIT": True,
            "ATOMIC_REQUESTS": False,
        }
    )


def test_busy_timeout_shortens_the_block_and_restores_each_connections_own(
    tmp_path, django_db_blocker
):
    connection = sqlite_connection(tmp_path / "db.sqlite3", "PRAGMA busy_timeout=20000")
    with django_db_blocker.unblock():
        try:
            for _ in range(2):
                with busy_timeout(connection, 1.5):
                    assert timeout_ms(connection) == 1500
                assert timeout_ms(connection) == 20000
            # A new connection may have another usual timeout: it is read again, not remembered.
            connection.close()
            connection.settings_dict["OPTIONS"]["init_command"] = "PRAGMA busy_timeout=7000"
            with busy_timeout(connection, 0.5):
                assert timeout_ms(connection) == 500
            assert timeout_ms(connection) == 7000
        finally:
            connection.close()
