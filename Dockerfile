# One image for web, worker and jobs: the command decides (see compose.yaml and docs/operations.md).
# Build: docker build -t kiosk .    Run: docker compose up (web, worker, MariaDB).

# --- Build: compilers and headers for mysqlclient, the virtualenv, the translations, the static files -----
FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
# Debian's point releases replace package versions: pinning them would break the build, not secure it; the
# base image's tag pins the distribution.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential default-libmysqlclient-dev gettext pkg-config \
 && rm -rf /var/lib/apt/lists/*
COPY requirements.txt /tmp/requirements.txt
RUN python -m venv /venv && /venv/bin/pip install -r /tmp/requirements.txt
WORKDIR /app
COPY . .
# compilemessages (the .po catalogues to the .mo files Django reads; git ignores them) and collectstatic need
# settings that start: a throw-away key, DEBUG off, no database.
RUN export DEBUG=false SECRET_KEY=build-only-not-a-secret MERCADOPAGO_SIMULATOR=true \
 && /venv/bin/python manage.py compilemessages -v 0 --ignore=staticfiles \
 && /venv/bin/python manage.py collectstatic --no-input -v 0

# --- Runtime: the MariaDB client library only, no compilers, not root ---------------------------------
FROM python:3.11-slim-bookworm
ENV PATH=/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PORT=8000
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libmariadb3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 kiosk \
 && useradd --system --uid 10001 --gid kiosk --home-dir /app --shell /usr/sbin/nologin kiosk
COPY --from=build /venv /venv
COPY --from=build --chown=root:root /app /app
WORKDIR /app
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=2)"]
CMD ["gunicorn", "kiosk.wsgi", "-c", "gunicorn.conf.py"]
