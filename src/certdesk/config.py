"""One configuration file (`certdesk.toml`), every key overridable by `CERTDESK_<SECTION>_<KEY>`.

The schema is the dataclasses below; `docs/configuration.md` documents each key. Unknown keys are
refused so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from certdesk.domain.crl_schedule import CRLSchedule
from certdesk.domain.errors import CertdeskError

DEFAULT_FILE = "certdesk.toml"
SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


@dataclass(frozen=True)
class PathsConfig:
    data_dir: str = "./var"


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = ""  # empty: sqlite:///<data_dir>/certdesk.db
    sqlite_synchronous: str = "full"  # full: commits survive power loss; normal: faster


@dataclass(frozen=True)
class CAConfig:
    organisation: str = "certdesk Demo"
    country: str = "CN"
    root_name: str = "certdesk Demo Root CA"
    issuing_name: str = "certdesk Demo Issuing CA"
    key_type: str = "ec-p256"
    root_years: int = 20
    issuing_years: int = 10
    key_storage: str = "file"  # file | pkcs11
    passphrase: str = ""
    passphrase_file: str = ""  # empty: <data_dir>/ca/passphrase (created by the demo)
    pkcs11_module: str = SOFTHSM_MODULE
    root_key_uri: str = ""
    issuing_key_uri: str = ""


@dataclass(frozen=True)
class PolicyConfig:
    validity_years: int = 1
    renewal_window_days: int = 30


@dataclass(frozen=True)
class UrlsConfig:
    base: str = ""  # empty: https://<first of server.hostnames>:<server.port> (Config.base_url)
    crl: str = "{base}/pki/issuing.crl"
    delta_crl: str = "{base}/pki/issuing-delta.crl"  # Freshest CRL, when [crl] delta is on
    ocsp: str = "{base}/ocsp"
    ca_issuers: str = "{base}/pki/issuing.crt"


@dataclass(frozen=True)
class CRLConfig:
    next_update_hours: int = 24
    republish_before_hours: int = 6  # a complete CRL is republished this long before nextUpdate
    delta: bool = False  # delta CRLs (RFC 5280 5.2.4) and the Freshest CRL extension
    delta_every_minutes: int = 60  # a delta is republished this often even without revocations
    delta_next_update_hours: int = 4

    def schedule(self) -> CRLSchedule:
        """The publishing rule's inputs; margins that would republish at every round refused."""
        out = CRLSchedule(
            dt.timedelta(hours=self.next_update_hours),
            dt.timedelta(hours=self.republish_before_hours),
            self.delta,
            dt.timedelta(minutes=self.delta_every_minutes),
            dt.timedelta(hours=self.delta_next_update_hours),
        )
        if not dt.timedelta(0) <= out.republish_before < out.next_update:
            raise CertdeskError(
                "config.invalid",
                detail="crl.republish_before_hours must be at least 0 and below next_update_hours",
            )
        if out.delta and not dt.timedelta(0) < out.delta_every < out.delta_next_update:
            raise CertdeskError(
                "config.invalid",
                detail="crl.delta_every_minutes must be above 0 and below delta_next_update_hours",
            )
        return out


@dataclass(frozen=True)
class OCSPConfig:
    responder_days: int = 7  # validity of a delegated responder certificate (renewed at half)
    response_hours: int = 24  # nextUpdate - thisUpdate of a pre-signed response
    refresh_hours: int = 12  # re-sign a response whose nextUpdate is closer than this
    poll_seconds: int = 2  # how often `serve` looks for changes made by other processes
    sign_live_with_nonce: bool = False  # false: a nonce gets the pre-signed answer (RFC 5019)
    files: bool = True  # also write the responses under <data_dir>/ocsp-files for nginx
    cache_entries: int = 200_000  # answers kept in memory by `serve`


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8443
    hostnames: str = "127.0.0.1"
    trusted_proxies: str = ""  # addresses (CIDR) whose X-SSL-Client-Cert header is believed
    tls: bool = True  # false: plain HTTP on loopback only, for nginx in front
    workers: int = 1  # application processes on the one socket (more than 1: PostgreSQL only)
    jobs_takeover_seconds: int = 10  # how soon another process takes the jobs of a dead one
    threads: int = 4  # threads for requests' blocking work (login, database reads)
    issuing_threads: int = 64  # requests waiting on the group committer in a thread (EST, pickup)
    cpus: str = ""  # "": the system schedules; "auto" or "0,2-3": each process kept on one CPU

    def __post_init__(self) -> None:
        for name in ("threads", "issuing_threads"):
            if getattr(self, name) < 1:
                raise CertdeskError("config.invalid", detail=f"server.{name} must be at least 1")


@dataclass(frozen=True)
class LimitsConfig:
    """What one caller may cost the server before any of its request is parsed."""

    body_bytes: int = 256 * 1024  # request body of a caller with a client certificate
    anonymous_body_bytes: int = 32 * 1024  # without one (EST, renewal API, OCSP: a few KiB)
    header_seconds: int = 10  # time to send the whole request head
    keepalive_seconds: int = 5  # an idle kept-alive connection is closed after this
    max_connections: int = 256  # open connections; more are closed at once


@dataclass(frozen=True)
class TokenConfig:
    module: str = SOFTHSM_MODULE
    key_type: str = "ec-p256"


@dataclass(frozen=True)
class RenewalConfig:
    pending_hours: int = 168  # an issued renewal not confirmed by then is revoked
    nonce_seconds: int = 600  # how long a server nonce may be used (once)
    enrolment_code_hours: int = 72  # lifetime of a one-time EST enrolment code
    maintenance_minutes: int = 15  # how often `serve` runs housekeeping
    refusal_window_seconds: int = 300  # refused signed requests: audited once per kind per window


@dataclass(frozen=True)
class SupportConfig:
    """Who a holder calls when the registry's data is wrong (shown in refusals and pages)."""

    office: str = "certdesk Demo Registration Office"
    phone: str = "0771-0000000"
    email: str = "ra@demo.example"
    hours: str = "Mon-Fri 08:00-17:30"

    def contacts(self) -> str:
        return f"{self.office}, {self.phone}, {self.email} ({self.hours})"


@dataclass(frozen=True)
class RemindConfig:
    """Expiry reminders: when, in which language, to which webhooks, how hard to retry."""

    thresholds: str = "30,14,7,1,0"  # days before the expiry day; 0 = on the day
    locale: str = "zh-CN"  # the units' digests (holders get their own `people.locale`)
    digest: bool = True  # a daily digest to each unit's technical contact
    webhooks: str = ""  # "name=https://host/path, other=https://…"; secret: <secrets_dir>/<name>
    webhook_secrets_dir: str = ""  # empty: <data_dir>/webhooks
    max_attempts: int = 6  # then the message is `failed`, shown to officers
    retry_base_seconds: int = 60  # first retry after this, doubled each time (cap 6 hours)
    lease_seconds: int = 300  # a `sending` message whose job died is retried after this

    def endpoints(self) -> dict[str, str]:
        """The webhook endpoints by name."""
        out: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in self.webhooks.split(","))):
            name, sep, url = item.partition("=")
            if not sep or not re.fullmatch(r"[a-z0-9_-]+", name.strip()) or not url.strip():
                raise CertdeskError("config.invalid", detail=f"remind.webhooks: {item!r}")
            out[name.strip()] = url.strip()
        return out


@dataclass(frozen=True)
class SMTPConfig:
    host: str = ""  # empty: no e-mail is sent (the messages wait in the outbox)
    port: int = 587
    security: str = "starttls"  # starttls | tls (implicit, port 465) | none (loopback relay)
    username: str = ""
    password_file: str = ""  # the password, read when sending; empty: no authentication
    sender: str = "certdesk <certdesk@demo.example>"
    timeout_seconds: int = 30


@dataclass(frozen=True)
class IssuanceConfig:
    lint: bool = False  # run pkilint on every to-be-signed certificate (needs pkilint installed)


@dataclass(frozen=True)
class JournalConfig:
    """Where every committed change is also written (see docs/deployment.md, Backup)."""

    path: str = ""  # empty: <data_dir>/journal; best on another disk than the database
    checkpoint_key: str = ""  # empty: <data_dir>/ca/checkpoint.key (Ed25519, made on first use)
    segment_bytes: int = 4 * 1024 * 1024  # a new segment starts past this; old ones are kept


@dataclass(frozen=True)
class RequestsConfig:
    two_person: bool = True  # the filer of a request never approves or rejects it
    token_return_days: int = 7  # a departed person's token is overdue after this many days


@dataclass(frozen=True)
class Config:
    paths: PathsConfig = field(default_factory=PathsConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    ca: CAConfig = field(default_factory=CAConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    urls: UrlsConfig = field(default_factory=UrlsConfig)
    crl: CRLConfig = field(default_factory=CRLConfig)
    ocsp: OCSPConfig = field(default_factory=OCSPConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    token: TokenConfig = field(default_factory=TokenConfig)
    issuance: IssuanceConfig = field(default_factory=IssuanceConfig)
    renewal: RenewalConfig = field(default_factory=RenewalConfig)
    support: SupportConfig = field(default_factory=SupportConfig)
    journal: JournalConfig = field(default_factory=JournalConfig)
    remind: RemindConfig = field(default_factory=RemindConfig)
    smtp: SMTPConfig = field(default_factory=SMTPConfig)
    requests: RequestsConfig = field(default_factory=RequestsConfig)

    @property
    def data_dir(self) -> Path:
        return Path(self.paths.data_dir)

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.data_dir / 'certdesk.db'}"

    @property
    def journal_dir(self) -> Path:
        return Path(self.journal.path) if self.journal.path else self.data_dir / "journal"

    @property
    def checkpoint_key_path(self) -> Path:
        key = self.journal.checkpoint_key
        return Path(key) if key else self.data_dir / "ca" / "checkpoint.key"

    @property
    def base_url(self) -> str:
        """The public base URL: `urls.base` when set (e.g. nginx in front, another name),
        otherwise where `certdesk serve` answers: the first of `server.hostnames` (the name on
        its TLS certificate; `server.host` when none) and `server.port`. So changing the port
        alone changes the URLs written into certificates too."""
        if self.urls.base:
            return self.urls.base.rstrip("/")
        names = [h.strip() for h in self.server.hostnames.split(",") if h.strip()]
        host = names[0] if names else self.server.host
        if ":" in host:  # an IPv6 address
            host = f"[{host}]"
        port = "" if self.server.port == 443 else f":{self.server.port}"
        return f"https://{host}{port}"

    def url(self, name: str) -> str:
        """A public URL from [urls] with `{base}` filled in."""
        template: str = getattr(self.urls, name)
        return template.format(base=self.base_url)

    def replace(self, **sections: Mapping[str, Any]) -> Config:
        """A copy with some keys changed, e.g. `cfg.replace(ca={"key_type": "rsa-2048"})`."""
        changes = {
            name: dataclasses.replace(getattr(self, name), **values)
            for name, values in sections.items()
        }
        return dataclasses.replace(self, **changes)


def _coerce(value: Any, kind: type, where: str) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {
            "1",
            "true",
            "yes",
            "on",
            "0",
            "false",
            "no",
            "off",
        }:
            return value.lower() in {"1", "true", "yes", "on"}
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value):
            return int(value)
    elif kind is str and isinstance(value, str):
        return value
    raise CertdeskError(
        "config.invalid", detail=f"{where}: expected {kind.__name__}, got {value!r}"
    )


def env_name(section: str, key: str) -> str:
    return f"CERTDESK_{section}_{key}".upper()


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read the TOML file (if any) and apply `CERTDESK_*` overrides.

    `path` None means `$CERTDESK_CONFIG` or `./certdesk.toml` when it exists.
    """
    env = os.environ if env is None else env
    chosen = Path(path) if path else Path(env.get("CERTDESK_CONFIG", DEFAULT_FILE))
    raw: dict[str, Any] = {}
    if chosen.exists():
        try:
            raw = tomllib.loads(chosen.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise CertdeskError("config.invalid", detail=f"{chosen}: {exc}") from exc
    elif path is not None:
        raise CertdeskError("config.invalid", detail=f"{chosen} does not exist")
    unknown_sections = set(raw) - {f.name for f in fields(Config)}
    if unknown_sections:
        raise CertdeskError("config.invalid", detail=f"unknown sections {sorted(unknown_sections)}")
    sections: dict[str, Any] = {}
    defaults = Config()
    for sec in fields(Config):
        sec_type = getattr(defaults, sec.name)
        given = raw.get(sec.name, {})
        if not isinstance(given, dict):
            raise CertdeskError("config.invalid", detail=f"[{sec.name}] must be a table")
        known = {f.name: f for f in fields(sec_type)}
        unknown = set(given) - set(known)
        if unknown:
            raise CertdeskError(
                "config.invalid", detail=f"unknown keys in [{sec.name}]: {sorted(unknown)}"
            )
        values: dict[str, Any] = {}
        for name in known:
            kind = type(getattr(sec_type, name))
            if name in given:
                values[name] = _coerce(given[name], kind, f"{sec.name}.{name}")
            env_key = env_name(sec.name, name)
            if env_key in env:
                values[name] = _coerce(env[env_key], kind, env_key)
        sections[sec.name] = dataclasses.replace(sec_type, **values)
    return Config(**sections)
