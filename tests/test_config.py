"""One TOML file, CERTDESK_<SECTION>_<KEY> overrides; typos and wrong types refused (en, zh-CN)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from certdesk.config import Config, env_name, load_config
from certdesk.domain.errors import CertdeskError

ROOT = Path(__file__).resolve().parent.parent
NO_FILE = {"CERTDESK_CONFIG": "/nonexistent/certdesk.toml"}  # no file: defaults only

SAMPLE = """
[paths]
data_dir = "/srv/certdesk"

[ca]
organisation = "广西财政厅"
key_type = "rsa-3072"

[policy]
validity_years = 2
renewal_window_days = 45

[urls]
base = "https://pki.example.org/"

[server]
port = 9443

[issuance]
lint = true
"""


def write(tmp_path: Path, body: str, name: str = "certdesk.toml") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def refused(path: Path | None, env: dict[str, str]) -> CertdeskError:
    with pytest.raises(CertdeskError) as err:
        load_config(path, env)
    exc = err.value
    assert exc.code == "config.invalid"
    assert exc.status == 400
    en, zh = exc.message("en"), exc.message("zh-CN")
    assert en.startswith("Configuration error: ")
    assert zh.startswith("配置错误：")
    # the detail (what is wrong and where) is in both languages
    assert en.removeprefix("Configuration error: ") == zh.removeprefix("配置错误：")
    assert exc.messages() == {"en": en, "zh-CN": zh}
    return exc


def test_reads_the_toml_file(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, SAMPLE), {})
    assert cfg.paths.data_dir == "/srv/certdesk"
    assert cfg.data_dir == Path("/srv/certdesk")
    assert cfg.ca.organisation == "广西财政厅"
    assert cfg.ca.key_type == "rsa-3072"
    assert cfg.policy.validity_years == 2 and cfg.policy.renewal_window_days == 45
    assert cfg.server.port == 9443
    assert cfg.issuance.lint is True
    # keys not in the file keep their defaults
    assert cfg.ca.country == "CN" and cfg.ca.root_years == 20
    assert cfg.crl.next_update_hours == 24
    assert cfg.database_url == "sqlite:////srv/certdesk/certdesk.db"


def test_no_file_means_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./certdesk.toml here
    assert load_config(None, {}) == Config()
    assert load_config(None, NO_FILE) == Config()


def test_default_file_and_certdesk_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "[server]\nport = 1111\n")
    assert load_config(None, {}).server.port == 1111  # ./certdesk.toml
    other = write(tmp_path, "[server]\nport = 2222\n", "other.toml")
    assert load_config(None, {"CERTDESK_CONFIG": str(other)}).server.port == 2222
    # an explicit path wins over $CERTDESK_CONFIG
    explicit = write(tmp_path, "[server]\nport = 3333\n", "explicit.toml")
    assert load_config(explicit, {"CERTDESK_CONFIG": str(other)}).server.port == 3333


def test_load_config_uses_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CERTDESK_CA_PASSPHRASE", "from the environment")
    monkeypatch.setenv("CERTDESK_CRL_NEXT_UPDATE_HOURS", "6")
    cfg = load_config()
    assert cfg.ca.passphrase == "from the environment"
    assert cfg.crl.next_update_hours == 6


def test_environment_overrides_file_with_coercion(tmp_path: Path) -> None:
    env = {
        "CERTDESK_CA_ORGANISATION": "Override Org",  # str
        "CERTDESK_PATHS_DATA_DIR": "/var/lib/certdesk",  # key with an underscore
        "CERTDESK_DATABASE_URL": "postgresql+psycopg://u@db/certdesk",
        "CERTDESK_POLICY_RENEWAL_WINDOW_DAYS": "20",  # int
        "CERTDESK_SERVER_PORT": " 8444 ",
        "CERTDESK_ISSUANCE_LINT": "off",  # bool
        "CERTDESK_UNRELATED": "ignored",
        "certdesk_ca_country": "lower case is not an override",
    }
    cfg = load_config(write(tmp_path, SAMPLE), env)
    assert cfg.ca.organisation == "Override Org"
    assert cfg.ca.key_type == "rsa-3072"  # from the file, not overridden
    assert cfg.ca.country == "CN"
    assert cfg.paths.data_dir == "/var/lib/certdesk"
    assert cfg.database_url == "postgresql+psycopg://u@db/certdesk"
    assert cfg.policy.renewal_window_days == 20
    assert isinstance(cfg.policy.renewal_window_days, int)
    assert cfg.policy.validity_years == 2
    assert cfg.server.port == 8444
    assert cfg.issuance.lint is False


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        ("Yes", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("No", False),
        ("OFF", False),
    ],
)
def test_boolean_spellings(text: str, value: bool) -> None:
    assert load_config(None, {**NO_FILE, "CERTDESK_ISSUANCE_LINT": text}).issuance.lint is value


@pytest.mark.parametrize("value", ["0", "-3", "00017"])
def test_integer_spellings(value: str) -> None:
    cfg = load_config(None, {**NO_FILE, "CERTDESK_CRL_NEXT_UPDATE_HOURS": value})
    assert cfg.crl.next_update_hours == int(value)


def test_every_key_has_an_environment_name() -> None:
    defaults = Config()
    for section in dataclasses.fields(Config):
        for key in dataclasses.fields(getattr(defaults, section.name)):
            name = env_name(section.name, key.name)
            assert name == f"CERTDESK_{section.name.upper()}_{key.name.upper()}"
            original = getattr(getattr(defaults, section.name), key.name)
            given = {bool: "true", int: "7", str: "x"}[type(original)]
            cfg = load_config(None, {**NO_FILE, name: given})
            assert str(getattr(getattr(cfg, section.name), key.name)).lower() in {"true", "7", "x"}


def test_unknown_section_refused(tmp_path: Path) -> None:
    exc = refused(write(tmp_path, "[polcy]\nvalidity_years = 1\n"), {})
    assert "polcy" in exc.message("en") and "polcy" in exc.message("zh-CN")


def test_unknown_key_refused(tmp_path: Path) -> None:
    exc = refused(write(tmp_path, "[policy]\nrenewal_window = 30\n"), {})
    assert "renewal_window" in exc.message("en")
    assert "[policy]" in exc.message("zh-CN")


def test_section_that_is_not_a_table_refused(tmp_path: Path) -> None:
    refused(write(tmp_path, 'policy = "strict"\n'), {})


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ('[policy]\nvalidity_years = "two"\n', "policy.validity_years"),
        ("[server]\nport = 8443.0\n", "server.port"),
        ("[server]\nport = true\n", "server.port"),  # a bool is not an int
        ("[issuance]\nlint = 1\n", "issuance.lint"),  # an int is not a bool in TOML
        ("[ca]\norganisation = 5\n", "ca.organisation"),
        ('[server]\nhostnames = ["a", "b"]\n', "server.hostnames"),
    ],
)
def test_wrong_type_in_file_refused(tmp_path: Path, body: str, where: str) -> None:
    exc = refused(write(tmp_path, body), {})
    assert where in exc.message("en") and where in exc.message("zh-CN")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CERTDESK_SERVER_PORT", "eighty"),
        ("CERTDESK_SERVER_PORT", ""),
        ("CERTDESK_SERVER_PORT", "1.5"),
        ("CERTDESK_POLICY_VALIDITY_YEARS", "+1"),
        ("CERTDESK_ISSUANCE_LINT", "maybe"),
        ("CERTDESK_ISSUANCE_LINT", ""),
    ],
)
def test_wrong_type_in_environment_refused(name: str, value: str) -> None:
    exc = refused(None, {**NO_FILE, name: value})
    assert name in exc.message("en") and name in exc.message("zh-CN")


@pytest.mark.parametrize("value", ["--5", "-", "²", "5-"])
def test_odd_integers_in_environment_refused_not_crashing(value: str) -> None:
    """Anything that is not an integer must be `config.invalid`, never a bare ValueError."""
    refused(None, {**NO_FILE, "CERTDESK_SERVER_PORT": value})


def test_environment_value_of_wrong_type_refused_even_over_a_good_file(tmp_path: Path) -> None:
    refused(write(tmp_path, SAMPLE), {"CERTDESK_POLICY_VALIDITY_YEARS": "one"})


def test_malformed_toml_refused(tmp_path: Path) -> None:
    exc = refused(write(tmp_path, "[policy\nvalidity_years = 1\n"), {})
    assert "certdesk.toml" in exc.message("en")


def test_missing_explicit_file_refused(tmp_path: Path) -> None:
    exc = refused(tmp_path / "nope.toml", {})
    assert "nope.toml" in exc.message("en") and "nope.toml" in exc.message("zh-CN")


def test_url_fills_base() -> None:
    cfg = Config()
    assert cfg.url("crl") == "https://127.0.0.1:8443/pki/issuing.crl"
    assert cfg.url("ocsp") == "https://127.0.0.1:8443/ocsp"
    assert cfg.url("ca_issuers") == "https://127.0.0.1:8443/pki/issuing.crt"


def test_base_follows_the_port_unless_set() -> None:
    """Setting only the port must not leave certificates pointing at 8443."""
    moved = load_config(None, {"CERTDESK_SERVER_PORT": "9443"})
    assert moved.base_url == "https://127.0.0.1:9443"
    assert moved.url("crl") == "https://127.0.0.1:9443/pki/issuing.crl"
    named = load_config(
        None,
        {"CERTDESK_SERVER_HOSTNAMES": "portal.example, 10.0.0.5", "CERTDESK_SERVER_PORT": "443"},
    )
    assert named.url("ca_issuers") == "https://portal.example/pki/issuing.crt"
    v6 = Config().replace(server={"hostnames": "::1", "port": 8444})
    assert v6.base_url == "https://[::1]:8444"
    explicit = load_config(
        None, {"CERTDESK_SERVER_PORT": "9443", "CERTDESK_URLS_BASE": "https://pki.example/"}
    )
    assert explicit.url("crl") == "https://pki.example/pki/issuing.crl"


def test_url_fills_configured_base_without_double_slash(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, SAMPLE), {})  # base ends with "/"
    assert cfg.url("crl") == "https://pki.example.org/pki/issuing.crl"
    custom = load_config(
        write(tmp_path, '[urls]\nbase = "http://crl.example"\ncrl = "{base}/ca/{base}.crl"\n'),
        {"CERTDESK_URLS_BASE": "http://other.example"},
    )
    assert custom.url("crl") == "http://other.example/ca/http://other.example.crl"
    fixed = Config().replace(urls={"crl": "http://fixed.example/x.crl"})
    assert fixed.url("crl") == "http://fixed.example/x.crl"


def test_example_file_loads_and_matches_defaults() -> None:
    example = load_config(ROOT / "certdesk.example.toml", {})
    assert example == Config()


def test_documentation_lists_every_key() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    defaults = Config()
    for section in dataclasses.fields(Config):
        for key in dataclasses.fields(getattr(defaults, section.name)):
            assert f"`{section.name}.{key.name}`" in doc


@pytest.mark.parametrize("key", ["threads", "issuing_threads"])
def test_thread_budgets_below_one_refused(key: str) -> None:
    exc = refused(None, {f"CERTDESK_SERVER_{key.upper()}": "0"})
    assert f"server.{key} must be at least 1" in exc.message("zh-CN")
