"""System checks for what the code cannot work without and `check --deploy` does not know about.

MySQL/MariaDB converts dates to the local time zone in the database (the admin's date filters, the daily
sales report), which needs the server's time zone tables: without them those pages crash. The check fails
clearly instead, naming the command that loads them, when the server starts (runserver, gunicorn through
kiosk/wsgi.py) and in /readyz.
"""

from django.conf import settings
from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connections

TIMEZONE_TABLES_HINT = (
    "Load them once on the database server: mariadb-tzinfo-to-sql /usr/share/zoneinfo | mariadb -u root mysql "
    "(MySQL: mysql_tzinfo_to_sql /usr/share/zoneinfo | mysql -u root mysql). No restart is needed."
)


def timezone_tables_missing(alias: str = "default") -> bool:
    """True on MySQL/MariaDB without time zone tables (CONVERT_TZ to a named zone gives NULL there)."""
    connection = connections[alias]
    if connection.vendor != "mysql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT CONVERT_TZ('2000-01-01 12:00:00', 'UTC', %s)", [settings.TIME_ZONE])
        row = cursor.fetchone()
    return row is None or row[0] is None


def timezone_tables_message() -> str:
    return (
        f"The MySQL/MariaDB server has no time zone tables, so it cannot convert dates to {settings.TIME_ZONE} "
        "(the admin's date filters and the sales report would fail)."
    )


@register()
def check_timezone_tables(app_configs=None, **kwargs):
    try:
        missing = timezone_tables_missing()
    except DatabaseError:
        return []  # an unreachable database is /readyz's business, not a configuration error
    if missing:
        return [Error(timezone_tables_message(), hint=TIMEZONE_TABLES_HINT, id="kiosk.E001")]
    return []


def fail_fast_on_missing_timezone_tables() -> None:
    """For servers that run no system checks (gunicorn): refuse to start rather than crash on some pages."""
    try:
        missing = timezone_tables_missing()
    except DatabaseError:
        return
    if missing:
        raise ImproperlyConfigured(f"{timezone_tables_message()} {TIMEZONE_TABLES_HINT}")
