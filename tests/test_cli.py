"""The real `certdesk` console script in a subprocess: output, exit codes, languages, tampering."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import openssl
from softhsm import USER_PIN, SoftHSM

CERTDESK = Path(sys.executable).parent / "certdesk"
PASSPHRASE = "cli test passphrase"
# Chinese phrases from certdesk.domain.messages / the CLI
ZH_UNIT_NOT_FOUND = "单位 'NOPE' 不存在。"
ZH_UNIT_ADDED = "已添加单位 FIN。"


class Desk:
    """One certdesk installation under a temporary directory."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.db = home / "var" / "certdesk.db"

    def env(self, lang: str, passphrase: str, extra: dict[str, str]) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "LANG": lang,
            "COLUMNS": "200",  # wide enough that rich does not wrap or truncate
            "CERTDESK_PATHS_DATA_DIR": str(self.home / "var"),
            "CERTDESK_DATABASE_URL": f"sqlite:///{self.db}",
            "CERTDESK_CA_PASSPHRASE": passphrase,
        }
        env.update(extra)
        return env

    def run(
        self,
        *args: str,
        lang: str = "C.UTF-8",
        passphrase: str = PASSPHRASE,
        **extra: str,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CERTDESK), *args],
            cwd=self.home,
            env=self.env(lang, passphrase, extra),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def ok(self, *args: str, **kw: str) -> subprocess.CompletedProcess[str]:
        result = self.run(*args, **kw)
        assert result.returncode == 0, (
            f"{args}: {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
        return result

    def json(self, *args: str, **kw: str) -> object:
        return json.loads(self.ok(*args, "--json", **kw).stdout)


def flat(text: str) -> str:
    """Output with line wrapping undone, for matching phrases."""
    return " ".join(text.split())


def assert_refused(
    result: subprocess.CompletedProcess[str], exit_code: int, code: str, *phrases: str
) -> None:
    """A clean refusal: the exit status, the human message, and the stable code on stderr."""
    err = flat(result.stderr)
    assert result.returncode == exit_code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    for phrase in phrases:
        assert phrase in err, err
    assert code in err, f"the code {code!r} is not on stderr: {result.stderr!r}"


@pytest.fixture
def desk(tmp_path: Path) -> Desk:
    return Desk(tmp_path)


@pytest.fixture
def registry_desk(desk: Desk) -> Desk:
    desk.ok(
        "unit",
        "add",
        "FIN",
        "Finance Bureau",
        "--contact-name",
        "Li Contact",
        "--contact-email",
        "it@fin.example",
        "--contact-phone",
        "0771-1",
    )
    desk.ok(
        "person",
        "add",
        "p-001",
        "--name",
        "Zhang San",
        "--unit",
        "FIN",
        "--email",
        "zhang@fin.example",
    )
    return desk


# -- CA ---------------------------------------------------------------------------------------


def test_ca_init_then_show_json(desk: Desk) -> None:
    init = desk.ok("ca", "init")
    assert "Root CA: CN=certdesk Demo Root CA" in init.stdout
    assert "Issuing CA: CN=certdesk Demo Issuing CA" in init.stdout
    shown = desk.json("ca", "show")
    assert isinstance(shown, list)
    by_name = {row["name"]: row for row in shown}
    assert set(by_name) == {"root", "issuing"}
    root, issuing = by_name["root"], by_name["issuing"]
    assert root["subject"] == "CN=certdesk Demo Root CA,O=certdesk Demo,C=CN"
    assert issuing["subject"] == "CN=certdesk Demo Issuing CA,O=certdesk Demo,C=CN"
    assert root["key_type"] == issuing["key_type"] == "ec-p256"
    assert root["crl_number"] == issuing["crl_number"] == 0
    assert root["key"] == str(desk.home / "var" / "ca" / "root.key")
    assert root["not_after"] > issuing["not_after"]  # 20 years against 10
    # the serial shown is the one in the published certificate
    pem = desk.home / "var" / "pki" / "root.pem"
    out = openssl("x509", "-in", pem, "-noout", "-serial")
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip().split("=")[1], 16) == int(root["serial"], 16)
    chain = openssl("verify", "-CAfile", pem, desk.home / "var" / "pki" / "issuing.pem")
    assert chain.returncode == 0, chain.stdout + chain.stderr


def test_ca_show_before_init_refused(desk: Desk) -> None:
    assert_refused(desk.run("ca", "show"), 3, "ca.not_initialised", "certdesk ca init")


def test_ca_init_twice_refused_and_nothing_changes(desk: Desk) -> None:
    desk.ok("ca", "init")
    before = desk.json("ca", "show")
    assert_refused(
        desk.run("ca", "init"),
        3,
        "ca.already_initialised",
        "already initialised",
        "nothing was changed",
    )
    assert desk.json("ca", "show") == before


# -- registry ---------------------------------------------------------------------------------


def test_unit_add_and_list_json(desk: Desk) -> None:
    added = desk.ok(
        "unit",
        "add",
        "FIN",
        "Finance Bureau",
        "--contact-name",
        "Li Contact",
        "--contact-email",
        "it@fin.example",
        "--contact-phone",
        "0771-1",
    )
    assert "Unit FIN added." in added.stdout
    desk.ok("unit", "add", "EDU", "教育局")
    assert desk.json("unit", "list") == [
        {
            "code": "EDU",
            "name": "教育局",
            "contact_name": "",
            "contact_email": "",
            "contact_phone": "",
        },
        {
            "code": "FIN",
            "name": "Finance Bureau",
            "contact_name": "Li Contact",
            "contact_email": "it@fin.example",
            "contact_phone": "0771-1",
        },
    ]


def test_duplicate_unit_exit_3(desk: Desk) -> None:
    desk.ok("unit", "add", "FIN", "Finance Bureau")
    result = desk.run("unit", "add", "FIN", "Another Name")
    assert_refused(result, 3, "unit.duplicate", "A unit with code 'FIN' already exists.")
    units = desk.json("unit", "list")
    assert isinstance(units, list) and [u["name"] for u in units] == ["Finance Bureau"]


def test_person_add_unknown_unit_exit_4(desk: Desk) -> None:
    result = desk.run(
        "person", "add", "p-001", "--name", "Zhang San", "--unit", "NOPE", "--email", "z@x.example"
    )
    assert_refused(result, 4, "unit.not_found", "Unknown unit 'NOPE'.")
    assert desk.json("person", "list") == []


def test_person_list_table_and_show_json(registry_desk: Desk) -> None:
    desk = registry_desk
    listed = desk.ok("person", "list")
    assert "People / 人员" in listed.stdout
    assert "Zhang San" in listed.stdout and "p-001" in listed.stdout
    assert "zhang@fin.example" in listed.stdout and "active" in listed.stdout
    assert desk.json("person", "list", "--unit", "FIN") == desk.json("person", "list")
    assert desk.json("person", "list", "--unit", "OTHER") == []
    shown = desk.json("person", "show", "p-001")
    assert shown == {
        "person_id": "p-001",
        "name": "Zhang San",
        "unit_code": "FIN",
        "unit_name": "Finance Bureau",
        "position_code": None,
        "email": "zhang@fin.example",
        "phone": "",
        "state": "active",
        "certificates": [],
    }
    assert_refused(desk.run("person", "show", "p-404"), 4, "person.not_found", "'p-404'")


def test_person_duplicate_and_bad_email(registry_desk: Desk) -> None:
    again = registry_desk.run(
        "person", "add", "p-001", "--name", "Other", "--unit", "FIN", "--email", "o@fin.example"
    )
    assert_refused(again, 3, "person.duplicate", "'p-001'")
    bad = registry_desk.run(
        "person", "add", "p-002", "--name", "Other", "--unit", "FIN", "--email", "no-at-sign"
    )
    assert_refused(bad, 2, "input.invalid", "no-at-sign")


def test_names_and_codes_are_checked_alike(registry_desk: Desk) -> None:
    desk = registry_desk
    person = ("--unit", "FIN", "--email", "z@fin.example")
    for name in ("Zhang\r\nSan", "\x1b[31mRed", "Zhang\u202eSan", "x" * 65):
        refused = desk.run("person", "add", "p-009", "--name", name, *person)
        assert refused.returncode == 2, refused.stderr
        assert "input.bad_characters" in refused.stderr or "input.too_long" in refused.stderr
    for code in ("../../etc", "a/b", "p 1", "p..1"):
        assert_refused(desk.run("person", "add", code, "--name", "X", *person), 2, "input.bad_code")
        assert_refused(desk.run("unit", "add", code, "Some Unit"), 2, "input.bad_code")
    desk.ok("unit", "add", "GXCZ", "广西财政厅预算处")
    desk.ok("person", "add", "p-010", "--name", "张三", "--unit", "GXCZ", "--email", "z@gx.example")
    assert desk.json("person", "show", "p-010")["name"] == "张三"  # type: ignore[index]
    assert [p["person_id"] for p in desk.json("person", "list")] == ["p-001", "p-010"]  # type: ignore[index, union-attr]


# -- certificates and CRL -----------------------------------------------------------------------


def test_revoke_unknown_serial_exit_4(desk: Desk) -> None:
    desk.ok("ca", "init")
    result = desk.run("cert", "revoke", "0xDEADBEEF", "--reason", "keyCompromise")
    assert_refused(result, 4, "cert.not_found", "Unknown certificate serial deadbeef.")
    not_hex = desk.run("cert", "revoke", "xyz")
    assert_refused(not_hex, 2, "input.invalid", "'xyz'")


def test_revoke_bad_reason_exit_2(desk: Desk) -> None:
    desk.ok("ca", "init")
    serial = desk.json("ca", "show")[1]["serial"]  # type: ignore[index]
    result = desk.run("cert", "revoke", serial, "--reason", "bored")
    assert_refused(
        result, 2, "revocation.bad_reason", "Unknown revocation reason 'bored'", "keyCompromise"
    )
    on_hold = desk.run("cert", "revoke", serial, "--reason", "certificateHold")
    assert_refused(on_hold, 2, "revocation.bad_reason")


def audit_records(desk: Desk) -> int:
    verified = desk.json("audit", "verify")
    assert isinstance(verified, dict) and verified["ok"] is True
    return int(verified["records"])


def test_revoke_refuses_the_cas_own_certificates_and_changes_nothing(desk: Desk) -> None:
    """The rule the console and the API obey holds on the command line too."""
    desk.ok("ca", "init")
    shown = desk.json("ca", "show")
    assert isinstance(shown, list)
    before = audit_records(desk)
    for ca in shown:
        result = desk.run("cert", "revoke", ca["serial"], "--reason", "keyCompromise")
        assert_refused(result, 3, "cert.ca_certificate", ca["serial"], "belongs to a CA")
        zh = desk.run("cert", "revoke", ca["serial"], lang="zh_CN.UTF-8")
        assert_refused(zh, 3, "cert.ca_certificate", "是 CA 证书")
        assert desk.json("cert", "show", ca["serial"])["state"] == "active"  # type: ignore[index]
    assert audit_records(desk) == before
    crl = desk.ok("crl", "publish")
    assert "0 entries" in flat(crl.stdout)


def test_revoke_refuses_reasons_not_for_end_entities(ca_desk: Desk) -> None:
    ca_desk.ok("enroll", "p-001", "--p12", "p-001.p12", "--p12-passphrase", "s3cret-pass")
    (cert,) = ca_desk.json("cert", "list", "--person", "p-001")  # type: ignore[misc]
    before = audit_records(ca_desk)
    for reason in ("certificateHold", "cACompromise", "aACompromise", "aa-compromise"):
        result = ca_desk.run("cert", "revoke", cert["serial"], "--reason", reason)
        assert_refused(result, 2, "revocation.bad_reason", f"'{reason}'", "privilegeWithdrawn")
        assert "cACompromise" not in flat(result.stderr).split("use one of:")[1]
    assert ca_desk.json("cert", "show", cert["serial"])["state"] == "active"  # type: ignore[index]
    assert audit_records(ca_desk) == before
    # an end-entity reason on an end-entity certificate is still allowed
    done = ca_desk.ok("cert", "revoke", cert["serial"], "--reason", "privilegeWithdrawn", "--yes")
    assert "revoked (privilegeWithdrawn)" in flat(done.stdout)
    assert ca_desk.json("cert", "show", cert["serial"])["state"] == "revoked"  # type: ignore[index]
    assert audit_records(ca_desk) == before + 1


def test_enroll_code_hours_are_bounded(registry_desk: Desk) -> None:
    desk = registry_desk
    before = audit_records(desk)
    for hours in ("0", "-1", "721", "100000"):
        result = desk.run("enroll-code", "create", "p-001", "--hours", hours)
        assert_refused(result, 2, "input.invalid", "hours must be 1 to 720")
    zh = desk.run("enroll-code", "create", "p-001", "--hours", "0", lang="zh_CN.UTF-8")
    assert_refused(zh, 2, "input.invalid", "输入无效", "hours must be 1 to 720")
    with sqlite3.connect(desk.db) as conn:
        assert conn.execute("SELECT count(*) FROM enrolment_codes").fetchone() == (0,)
    assert audit_records(desk) == before
    # the bounds themselves are allowed
    for hours in ("1", "720"):
        made = desk.json("enroll-code", "create", "p-001", "--hours", hours)
        assert isinstance(made, dict) and made["person"] == "p-001"
    with sqlite3.connect(desk.db) as conn:
        assert conn.execute("SELECT count(*) FROM enrolment_codes").fetchone() == (2,)
    assert audit_records(desk) == before + 2


def test_crl_publish_with_wrong_passphrase_refused(desk: Desk) -> None:
    desk.ok("ca", "init")
    wrong = desk.run("crl", "publish", passphrase="not the passphrase")
    assert wrong.returncode != 0
    assert_refused(wrong, 5, "ca.wrong_passphrase", "Wrong passphrase for the CA key")
    assert not (desk.home / "var" / "pki" / "issuing.crl").exists()
    none = desk.run("crl", "publish", passphrase="")
    assert_refused(none, 2, "ca.no_passphrase", "CERTDESK_CA_PASSPHRASE")
    # with the right passphrase it works
    desk.ok("crl", "publish")
    crl = openssl(
        "crl", "-inform", "DER", "-in", desk.home / "var" / "pki" / "issuing.crl", "-noout", "-text"
    )
    assert crl.returncode == 0 and "Certificate Revocation List" in crl.stdout, crl.stderr


# -- audit ------------------------------------------------------------------------------------


def test_audit_verify_then_tamper(registry_desk: Desk) -> None:
    desk = registry_desk
    intact = desk.ok("audit", "verify")
    # journal.start (the journal begins with the database), unit.add, person.add
    assert "Audit chain intact: 3 records." in flat(intact.stdout)
    assert desk.json("audit", "verify") == {
        "records": 3,
        "ok": True,
        "problems": [],
        "checkpoint": None,
    }

    with sqlite3.connect(desk.db) as conn:
        changed = conn.execute(
            """UPDATE audit_log SET "after" = replace("after", 'Zhang San', 'Mallory') """
            "WHERE seq = 3"
        ).rowcount
    assert changed == 1

    broken = desk.run("audit", "verify")
    assert broken.returncode != 0
    assert_refused(broken, 1, "audit.broken", "broken at record 3", "edited")
    as_json = desk.run("audit", "verify", "--json")
    assert as_json.returncode != 0
    report = json.loads(as_json.stdout)
    assert report["ok"] is False and report["records"] == 3
    assert [(p["seq"], p["kind"]) for p in report["problems"]] == [(3, "edited")]


def test_audit_verify_names_deleted_record(registry_desk: Desk) -> None:
    desk = registry_desk
    desk.ok("unit", "add", "EDU", "Education Bureau")
    with sqlite3.connect(desk.db) as conn:
        conn.execute("DELETE FROM audit_log WHERE seq = 2")
    result = desk.run("audit", "verify")
    assert_refused(result, 1, "audit.broken", "record 2", "missing", "deleted before 3")


# -- languages and configuration ------------------------------------------------------------------


def test_messages_in_chinese(desk: Desk) -> None:
    added = desk.ok("unit", "add", "FIN", "Finance Bureau", lang="zh_CN.UTF-8")
    assert ZH_UNIT_ADDED in added.stdout
    result = desk.run(
        "person",
        "add",
        "p-1",
        "--name",
        "Z",
        "--unit",
        "NOPE",
        "--email",
        "z@x.example",
        lang="zh_CN.UTF-8",
    )
    assert result.returncode == 4
    assert ZH_UNIT_NOT_FOUND in flat(result.stderr)
    assert "Unknown unit" not in result.stderr
    # CERTDESK_LANG wins over the system locale
    forced = desk.run(
        "person",
        "add",
        "p-1",
        "--name",
        "Z",
        "--unit",
        "NOPE",
        "--email",
        "z@x.example",
        CERTDESK_LANG="zh-CN",
    )
    assert ZH_UNIT_NOT_FOUND in flat(forced.stderr)


def test_messages_in_english(desk: Desk) -> None:
    added = desk.ok("unit", "add", "FIN", "Finance Bureau", lang="C.UTF-8")
    assert "Unit FIN added." in added.stdout
    result = desk.run(
        "person",
        "add",
        "p-1",
        "--name",
        "Z",
        "--unit",
        "NOPE",
        "--email",
        "z@x.example",
        lang="C.UTF-8",
    )
    assert result.returncode == 4
    assert "Unknown unit 'NOPE'." in flat(result.stderr)
    assert ZH_UNIT_NOT_FOUND not in result.stderr
    # LC_ALL comes before LANG, as in POSIX
    lc_all = desk.run(
        "person",
        "add",
        "p-1",
        "--name",
        "Z",
        "--unit",
        "NOPE",
        "--email",
        "z@x.example",
        lang="zh_CN.UTF-8",
        LC_ALL="C.UTF-8",
    )
    assert "Unknown unit 'NOPE'." in flat(lc_all.stderr)


def test_bad_configuration_refused(desk: Desk) -> None:
    result = desk.run("unit", "list", CERTDESK_SERVER_PORT="eighty")
    assert_refused(result, 2, "config.invalid", "CERTDESK_SERVER_PORT", "'eighty'")
    (desk.home / "certdesk.toml").write_text("[polcy]\n", encoding="utf-8")
    from_file = desk.run("unit", "list")  # ./certdesk.toml in the working directory is read
    assert_refused(from_file, 2, "config.invalid", "polcy")


def test_names_with_brackets_are_printed_as_given(desk: Desk) -> None:
    """User data is not rich markup: a unit called "[/]" must neither vanish nor crash a listing."""
    added = desk.run("unit", "add", "ODD", "[/] Odd [bold]Unit")
    assert added.returncode == 0, added.stderr
    listed = desk.run("unit", "list")
    assert listed.returncode == 0, listed.stderr
    assert "[/] Odd [bold]Unit" in listed.stdout
    # a refusal that repeats what was typed shows it as typed too
    assert_refused(desk.run("unit", "add", "[/]", "Again"), 2, "input.bad_code", "'[/]'")


# -- enrolment --------------------------------------------------------------------------------


@pytest.fixture
def ca_desk(registry_desk: Desk) -> Desk:
    registry_desk.ok("ca", "init")
    return registry_desk


def openssl_csr(home: Path, name: str, *req: str) -> Path:
    """A CSR made by `openssl req` with a new P-256 key and the options `req`."""
    key, csr = home / f"{name}.key", home / f"{name}.csr"
    made = openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", key, "-out", csr, *req,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    return csr


def test_enroll_from_openssl_csr(ca_desk: Desk) -> None:
    # a CSR that asks for another name is refused with what differs, as renewal refuses it
    other = openssl_csr(ca_desk.home, "other", "-subj", "/CN=Somebody Else")
    refused = ca_desk.run("enroll", "p-001", "--csr", str(other))
    assert_refused(refused, 6, "enrolment.identity_change", "Somebody Else", "Zhang San")
    sans = ",".join(f"DNS:h{n}.example" for n in range(5000))
    many = openssl_csr(
        ca_desk.home, "many", "-subj", "/CN=Zhang San", "-addext", f"subjectAltName={sans}"
    )
    assert_refused(ca_desk.run("enroll", "p-001", "--csr", str(many)), 1, "input.csr_too_large")
    assert ca_desk.json("cert", "list", "--person", "p-001") == []
    csr = openssl_csr(ca_desk.home, "own", "-subj", "/CN=Zhang San")  # repeats the registry
    out = ca_desk.json("enroll", "p-001", "--csr", str(csr), "--out", "cert.pem")
    assert isinstance(out, dict) and out["person"] == "p-001"
    shown = openssl("x509", "-in", ca_desk.home / "cert.pem", "-noout", "-subject")
    assert "OU = Finance Bureau, CN = Zhang San" in shown.stdout  # the registry's identity
    again = ca_desk.run("enroll", "p-001", "--csr", str(csr))
    assert_refused(again, 3, "person.has_active_certificate", out["serial"])


def test_enroll_pkcs12(ca_desk: Desk) -> None:
    ca_desk.ok("enroll", "p-001", "--p12", "p-001.p12", "--p12-passphrase", "s3cret-pass")
    info = openssl(
        "pkcs12", "-in", ca_desk.home / "p-001.p12", "-nokeys", "-passin", "pass:s3cret-pass"
    )
    assert info.returncode == 0, info.stderr
    assert "subject=C = CN, O = certdesk Demo, OU = Finance Bureau, CN = Zhang San" in info.stdout
    # an existing file is never overwritten, and nothing is issued for the refused request
    ca_desk.ok(
        "person", "add", "p-002", "--name", "Li Si", "--unit", "FIN", "--email", "li@fin.example"
    )
    refused = ca_desk.run("enroll", "p-002", "--p12", "p-001.p12", "--p12-passphrase", "x" * 9)
    assert_refused(refused, 2, "input.invalid", "not overwritten")
    assert ca_desk.json("cert", "list", "--person", "p-002") == []


def test_enroll_needs_exactly_one_target(ca_desk: Desk) -> None:
    assert_refused(ca_desk.run("enroll", "p-001"), 2, "input.invalid", "exactly one")


def test_enroll_onto_softhsm_token(ca_desk: Desk, softhsm: SoftHSM) -> None:
    softhsm.init_token("zhang")
    conf = os.environ["SOFTHSM2_CONF"]
    wrong = ca_desk.run(
        "enroll", "p-001", "--token-label", "zhang", "--pin", "999999", SOFTHSM2_CONF=conf
    )
    assert_refused(wrong, 5, "pkcs11.wrong_pin")
    assert softhsm.objects("zhang") == []
    done = ca_desk.ok(
        "enroll", "p-001", "--token-label", "zhang", "--pin", USER_PIN, SOFTHSM2_CONF=conf
    )
    assert "5/5" in done.stdout and "Issued certificate" in done.stdout
    kinds = sorted(o["kind"] for o in softhsm.objects("zhang"))
    # the pair, and the marker that the office's initial PIN is still set
    assert kinds == ["Certificate", "Data", "Private Key", "Public Key"]
    tokens = ca_desk.json("token", "stock")
    assert isinstance(tokens, list) and tokens[0]["keeper_id"] == "p-001"


# -- serials: never cut, a unique prefix accepted; destructive commands ask -------------------


def run_on_terminal(desk: Desk, *args: str, answer: str) -> subprocess.CompletedProcess[str]:
    """The command with a pseudo-terminal as stdin (as a person runs it), typing `answer`."""
    controller, terminal = os.openpty()
    try:
        os.write(controller, answer.encode())
        return subprocess.run(
            [str(CERTDESK), *args],
            cwd=desk.home,
            env=desk.env("C.UTF-8", PASSPHRASE, {}),
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(terminal)
        os.close(controller)


@pytest.fixture
def issued_desk(ca_desk: Desk) -> tuple[Desk, str]:
    ca_desk.ok("enroll", "p-001", "--p12", "p-001.p12", "--p12-passphrase", "s3cret-pass")
    (cert,) = ca_desk.json("cert", "list", "--person", "p-001")  # type: ignore[misc]
    return ca_desk, str(cert["serial"])


@pytest.mark.parametrize("columns", ["80", "120"])
def test_cert_list_prints_serials_whole(issued_desk: tuple[Desk, str], columns: str) -> None:
    desk, serial = issued_desk
    listed = desk.json("cert", "list")
    assert isinstance(listed, list) and len(listed) == 3  # p-001's, the root's, the issuing CA's
    serials = [c["serial"] for c in listed]
    assert any(len(s) >= 38 for s in serials)  # 20-byte random serials
    for command in (("cert", "list"), ("person", "show", "p-001")):
        out = desk.ok(*command, COLUMNS=columns).stdout
        lines = out.splitlines()
        wanted = serials if command[0] == "cert" else [serial]
        for full in wanted:
            # on one line, whole, and not followed by more hex (nothing folded onto it)
            assert any(re.search(rf"(^|\W){full}(\W|$)", line) for line in lines), (full, out)
        assert "…" not in out, out
        assert all(len(line) <= int(columns) for line in lines), out


def test_cert_show_and_revoke_accept_a_unique_prefix(issued_desk: tuple[Desk, str]) -> None:
    desk, serial = issued_desk
    shown = desk.json("cert", "show", serial[:7])
    assert isinstance(shown, dict) and shown["serial"] == serial
    assert desk.json("cert", "show", serial[:6].upper()) == shown  # as typed: any case
    assert desk.json("cert", "show", ":".join(serial[i : i + 2] for i in (0, 2, 4))) == shown
    too_short = desk.run("cert", "show", serial[:5])
    assert_refused(too_short, 2, "cert.serial_too_short", "at least 6 hex digits", "(5 given)")
    zh = desk.run("cert", "revoke", serial[:5], "--yes", lang="zh_CN.UTF-8")
    assert_refused(zh, 2, "cert.serial_too_short", "至少需要 6 位")
    unknown = "f" * 7 if not serial.startswith("fffffff") else "e" * 7
    assert_refused(desk.run("cert", "show", unknown), 4, "cert.not_found", unknown)
    # a second certificate sharing the first 8 digits: the prefix becomes ambiguous
    twin = serial[:8] + ("0" if serial[8] != "0" else "1") + serial[9:]
    with sqlite3.connect(desk.db) as conn:
        conn.execute(
            "CREATE TEMP TABLE twin AS SELECT * FROM certificates WHERE serial = ?", [serial]
        )
        conn.execute(
            "UPDATE twin SET serial = ?, state = 'abandoned', fingerprint = NULL, der = NULL",
            [twin],
        )
        conn.execute("INSERT INTO certificates SELECT * FROM twin")
    before = audit_records(desk)
    for command in (("show",), ("revoke", "--yes")):
        ambiguous = desk.run("cert", command[0], serial[:8], *command[1:])
        assert_refused(
            ambiguous, 2, "cert.ambiguous_serial", "matches several certificates", serial, twin
        )
    assert audit_records(desk) == before
    # one more digit settles it; the revocation names the full serial
    done = desk.ok("cert", "revoke", serial[:9], "--reason", "keyCompromise", "--yes")
    assert f"Certificate {serial} revoked (keyCompromise)." in flat(done.stdout)
    assert desk.json("cert", "show", serial)["state"] == "revoked"  # type: ignore[index]
    assert desk.json("cert", "show", twin)["state"] == "abandoned"  # type: ignore[index]


def test_revoke_asks_first_and_scripts_say_yes(issued_desk: tuple[Desk, str]) -> None:
    desk, serial = issued_desk
    before = audit_records(desk)
    # no terminal (CI) and no --yes: refused, and said how to confirm
    refused = desk.run("cert", "revoke", serial, "--reason", "keyCompromise")
    assert_refused(refused, 2, "cli.confirmation_needed", "no terminal to ask", "--yes")
    zh = desk.run("cert", "revoke", serial, lang="zh_CN.UTF-8")
    assert_refused(zh, 2, "cli.confirmation_needed", "需要确认", "--yes")
    # what would be revoked was shown before the question
    err = flat(refused.stderr)
    for shown in (serial, "p-001", "CN=Zhang San", "keyCompromise", "active"):
        assert shown in err, err
    # a person at a terminal who answers no
    no = run_on_terminal(desk, "cert", "revoke", serial, answer="n\n")
    assert_refused(no, 2, "cli.cancelled", "nothing was changed")
    assert "Revoke this certificate?" in no.stdout
    assert desk.json("cert", "show", serial)["state"] == "active"  # type: ignore[index]
    assert audit_records(desk) == before
    # … and one who answers yes
    yes = run_on_terminal(desk, "cert", "revoke", serial, "--reason", "superseded", answer="y\n")
    assert yes.returncode == 0, yes.stdout + yes.stderr
    assert f"Certificate {serial} revoked (superseded)." in flat(yes.stdout)
    assert desk.json("cert", "show", serial)["state"] == "revoked"  # type: ignore[index]
    assert audit_records(desk) == before + 1
    # refusals come before the question: nothing to confirm when nothing can be done
    again = desk.run("cert", "revoke", serial)
    assert_refused(again, 3, "cert.already_revoked", serial)


# -- version, help, positions -------------------------------------------------------------------


def test_version(desk: Desk) -> None:
    from certdesk import __version__

    (desk.home / "certdesk.toml").write_text("[polcy]\n", encoding="utf-8")  # not even read
    shown = desk.ok("--version")
    assert shown.stdout == f"certdesk {__version__}\n"
    assert desk.ok("--help").stdout.count("--version") == 1


def _commands() -> list[tuple[str, ...]]:
    """Every command path of the real `certdesk` (the Click tree Typer builds)."""
    import typer

    from certdesk.cli.main import app

    found: list[tuple[str, ...]] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        found.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


def test_every_command_has_help_and_flags_show_as_flags(desk: Desk) -> None:
    import typer

    from certdesk.cli.main import app

    commands = _commands()
    assert ("position", "list") in commands and ("unit", "list") in commands
    root = typer.main.get_command(app)
    for path in commands:
        command: Any = root
        for name in path:
            command = command.commands[name]
        assert (command.help or "").strip(), f"certdesk {' '.join(path)} has no help text"
        shown = desk.ok(*path, "--help", COLUMNS="100").stdout
        assert "<bool>" not in shown, shown
        if path and not hasattr(command, "commands"):
            assert (command.help or "").split(".")[0][:30] in flat(shown), shown
    listing = desk.ok("cert", "list", "--help", COLUMNS="100").stdout
    assert re.search(r"│ --json\s+Machine-readable output", listing), listing
    assert re.search(r"│ --person\s+<str>\s+Only this person", listing), listing


def test_position_list_and_unknown_position_names_the_known_ones(desk: Desk) -> None:
    assert desk.json("position", "list") == []
    desk.ok("init")
    positions = desk.json("position", "list")
    assert isinstance(positions, list)
    codes = [p["code"] for p in positions]
    assert "clerk" in codes and "ra" in codes
    assert "Finance clerk" in desk.ok("position", "list").stdout
    boss = ("person", "add", "p-9", "--name", "X", "--unit", "DEMO", "--email", "x@demo.example")
    refused = desk.run(*boss, "--position", "boss")
    assert_refused(
        refused,
        4,
        "position.not_found",
        "Unknown position 'boss'",
        ", ".join(codes),
        "certdesk position list",
    )
    zh = desk.run(*boss, "--position", "boss", lang="zh_CN.UTF-8")
    assert_refused(zh, 4, "position.not_found", "已有岗位", "clerk")
