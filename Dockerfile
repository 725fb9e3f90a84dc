# Helpline service image: PostgreSQL via HELPLINE_DATABASE_URL, keys via env, Vault or a key file, non-root.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HELPLINE_DATA_DIR=/data

# postgresql-client: pg_dump/pg_restore for `helpline backup`/`restore`. Unpinned on purpose: Debian's
# security updates for bookworm replace the exact version, and a pin would break the build (see .hadolint.yaml).
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /home/helpline --shell /usr/sbin/nologin helpline \
 && install -d -o helpline -g helpline -m 0700 /data

WORKDIR /srv/helpline
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
RUN pip install .

USER 10001
EXPOSE 8000
VOLUME ["/data"]
# No curl in a slim image: the standard library asks the health route.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/api/v1/health', timeout=4).status != 200)"]
# `helpline start`: says where the keys come from, makes a key file in /data only if that is the provider
# and none exists yet, migrates, then serves. No admin is made here (its password would sit in the
# container log): `docker compose run --rm helpline helpline create-user NAME --role admin`.
CMD ["helpline", "start", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
