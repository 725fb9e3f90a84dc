"""The compose file, the image and the docs say the same, and keep what a working deployment needs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text("utf-8"))


def test_the_database_password_has_one_source() -> None:
    text = (ROOT / "compose.yaml").read_text("utf-8")
    services = _compose()["services"]
    assert "secrets" not in _compose() and "POSTGRES_PASSWORD_FILE" not in text
    assert services["db"]["environment"]["POSTGRES_PASSWORD"].startswith("${DB_PASSWORD:?")
    url = services["helpline"]["environment"]["HELPLINE_DATABASE_URL"]
    assert "${DB_PASSWORD:?" in url
    variables = set(re.findall(r"\$\{(\w+)", text))
    assert variables == {"DB_PASSWORD"}  # nothing else must be set to match it


def test_every_service_is_health_checked_restarted_and_started_in_order() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        assert service.get("restart") in ("unless-stopped", "always"), name
        check = service.get("healthcheck", {})
        assert check.get("test") and check.get("interval"), name
    assert services["helpline"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    # The health check asks the route that exists.
    assert "/api/v1/health" in " ".join(services["helpline"]["healthcheck"]["test"])


def test_the_app_publishes_only_to_this_host_and_keeps_keys_apart_from_the_database() -> None:
    helpline = _compose()["services"]["helpline"]
    assert all(str(p).startswith("127.0.0.1:") for p in helpline["ports"])
    key_volumes = {v.split(":")[0] for v in helpline["volumes"]}
    db_volumes = {v.split(":")[0] for v in _compose()["services"]["db"]["volumes"]}
    assert key_volumes and not key_volumes & db_volumes


def test_deploy_doc_shows_the_compose_file_as_it_is() -> None:
    doc = (ROOT / "docs" / "DEPLOY.md").read_text("utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", doc, flags=re.S)
    assert (ROOT / "compose.yaml").read_text("utf-8") in blocks


def test_the_image_has_a_health_check_a_start_that_explains_keys_and_a_small_context() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text("utf-8")
    assert re.search(r"^HEALTHCHECK .*\n.*/api/v1/health", dockerfile, flags=re.M)
    assert re.search(r'^CMD \["helpline", "start"', dockerfile, flags=re.M)
    ignore = (ROOT / ".dockerignore").read_text("utf-8").split()
    assert ignore[ignore.index("*") :][:1] == ["*"]  # deny everything first, then allow what the image needs
    for needed in ("!app/", "!migrations/", "!pyproject.toml", "!alembic.ini"):
        assert needed in ignore
    for secret in ("!data/", "!.env", "!keys.json"):
        assert secret not in ignore


def test_hadolint_passes() -> None:
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "hadolint"), str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
