"""Settings: the single source of defaults, validated at start."""

from __future__ import annotations

import functools
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_REGIONS = (
    "chechnya",
    "dagestan",
    "ingushetia",
    "north_caucasus_other",
    "moscow",
    "st_petersburg",
    "russia_other",
    "abroad",
    "unknown",
)


DEFAULT_LANGUAGES = ("ru", "ce", "inh", "av", "dar", "lez", "kbd", "krc", "os", "uk", "en", "other")


class ConfigError(Exception):
    """A setting is missing or invalid; the message is safe to show."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HELPLINE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = Path("./data")
    database_url: str = ""
    key_file: Path | None = None
    key_provider: Literal["file", "env", "vault"] = "file"
    # Read from HELPLINE_MASTER_KEY when key_provider is "env"; never logged or shown.
    master_key: str | None = Field(default=None, repr=False)
    suppression_k: int = Field(default=5, ge=2, le=100)
    secure_cookies: bool = True

    # Beyond the contract: tunables with documented, conservative defaults.
    regions: tuple[str, ...] = DEFAULT_REGIONS
    # The call's language: codes from this list only, shown by name in the page's language.
    languages: tuple[str, ...] = DEFAULT_LANGUAGES
    token_ttl_minutes: int = Field(default=30, ge=1, le=24 * 60)
    session_idle_minutes: int = Field(default=15, ge=1)
    session_absolute_hours: int = Field(default=12, ge=1)
    # Wrong codes after a correct password lock an account for lockout_minutes; wrong passwords only
    # slow its name down: sign_in_delay_ms doubling per failure up to sign_in_delay_cap_ms. Both kinds
    # of failure are forgotten after failure_decay_minutes without one.
    lockout_threshold: int = Field(default=5, ge=1)
    lockout_minutes: int = Field(default=15, ge=1)
    sign_in_delay_ms: int = Field(default=250, ge=0)
    sign_in_delay_cap_ms: int = Field(default=8000, ge=0, le=60_000)
    failure_decay_minutes: int = Field(default=60, ge=1)
    password_min_length: int = Field(default=12, ge=8, le=128)
    # Width of the first blind-index epoch; later epochs follow the data (app/lifecycle/reindex.py).
    index_bits: int = Field(default=12, ge=4, le=32)
    # How often each server worker checks whether the blind index needs a new width (0: never;
    # then only `helpline keys reindex` changes it).
    index_autowidth_seconds: float = Field(default=60.0, ge=0)
    dp_epsilon: float = Field(default=1.0, gt=0)
    # Releases with differential-privacy noise (drawn once, stored); each month may spend this much in all.
    release_noise: bool = False
    dp_month_budget: float = Field(default=1.0, gt=0)
    retention_contact_days: int = Field(default=365, ge=1)
    retention_closed_case_days: int = Field(default=730, ge=1)
    decrypt_alarm_per_hour: int = Field(default=200, ge=1)
    # Contacts one caseworker may record in an hour; past it, 429 and an alarm (handle probing).
    intake_per_hour: int = Field(default=60, ge=1)
    # Minutes a form posted after its session ended is held sealed, waiting for its author to sign in.
    held_form_minutes: int = Field(default=10, ge=1, le=60)
    # The audit chain's head goes to the server log every this many entries, and every this many
    # minutes if it moved: at the next entry, or by each server worker's timer (app.audit.checkpoints).
    # Minutes may be a fraction (0.5: every 30 s).
    audit_checkpoint_every: int = Field(default=1000, ge=1)
    audit_checkpoint_minutes: float = Field(default=10, gt=0)
    # A referral waits for a coordinator's approval before its package can be downloaded.
    referral_approval: bool = False
    # Direct delivery of partners' packages to POST /api/v1/referrals/inbox: off unless turned on.
    referral_inbox: bool = False
    referral_inbox_per_day: int = Field(default=50, ge=1)
    vault_addr: str | None = None
    vault_token: str | None = Field(default=None, repr=False)
    vault_key_name: str = "helpline"
    # Benchmark-only switch: stores plaintext-free placeholders instead of sealing, so the cost of
    # encryption can be measured against the same endpoint. Refused unless explicitly set.
    bench_disable_crypto: bool = False
    # Network I/O never happens inside a unit of work: a request body is read whole before the route
    # runs, within this deadline (408 after it), up to this size (413 past it).
    body_timeout_seconds: float = 10.0
    header_timeout_seconds: float = 10.0
    max_body_bytes: int = 1_048_576
    # Requests one worker runs at once; more wait for a slot, and answer 503 after the wait below.
    max_in_flight: int = 32
    in_flight_wait_seconds: float = 10.0

    @field_validator("regions", "languages", mode="before")
    @classmethod
    def _split_regions(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(r.strip() for r in value.split(",") if r.strip())
        return value

    @model_validator(mode="after")
    def _derive_paths(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'helpline.db'}"
        if self.key_file is None:
            self.key_file = self.data_dir / "keys.json"
        if not self.database_url.startswith(("sqlite", "postgresql")):
            raise ValueError("HELPLINE_DATABASE_URL must be a sqlite:/// or postgresql+psycopg:// URL")
        if self.key_provider == "env" and not self.master_key:
            raise ValueError("HELPLINE_KEY_PROVIDER=env needs HELPLINE_MASTER_KEY")
        if self.key_provider == "vault" and not (self.vault_addr and self.vault_token):
            raise ValueError("HELPLINE_KEY_PROVIDER=vault needs HELPLINE_VAULT_ADDR and HELPLINE_VAULT_TOKEN")
        if "other" not in self.languages:
            self.languages = (*self.languages, "other")
        if "unknown" not in self.regions:
            self.regions = (*self.regions, "unknown")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def key_path(self) -> Path:
        assert self.key_file is not None
        return self.key_file

    def today(self) -> date:
        return date.today()


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment and .env, or a ConfigError naming the bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "settings"
        name = f"HELPLINE_{where.upper()}" if where != "settings" else "settings"
        raise ConfigError(f"invalid configuration: {name}: {first.get('msg', 'invalid')}") from None


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
