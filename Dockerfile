# Helpline service image: PostgreSQL via HELPLINE_DATABASE_URL, keys via env or Vault, non-root.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HELPLINE_DATA_DIR=/data

RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home --home-dir /home/helpline --shell /usr/sbin/nologin helpline \
 && install -d -o helpline -g helpline -m 0700 /data

WORKDIR /srv/helpline
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
RUN pip install .

USER helpline
EXPOSE 8000
# Migrations run explicitly (`docker compose run --rm helpline helpline migrate`), not on every start.
CMD ["helpline", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
