"""`certdesk`: one command for officers (registry, CA, enrolment) and the server."""

from __future__ import annotations

import dataclasses
import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperOption

from certdesk.cli import holder, positions, requests
from certdesk.cli.output import (
    ask_secret,
    confirm,
    console,
    emit_json,
    fail,
    fields,
    progress,
    say,
    table,
)
from certdesk.config import Config, load_config
from certdesk.domain.errors import CertdeskError

if TYPE_CHECKING:  # the server side is imported when an office command runs, not for `renew`
    from types import ModuleType

    from certdesk.domain.registry import Person
    from certdesk.services.context import Context


def _flags_take_no_value() -> None:
    """Typer's rich help prints a boolean flag as `--json <bool>`, as if it took a value; show
    flags bare (`--json`), as Click's own help does."""
    shown_type = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else shown_type(self, ctx)

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_take_no_value()

app = typer.Typer(
    help="certdesk — personal certificates on USB tokens.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
ca_app = typer.Typer(help="The certificate authority.", no_args_is_help=True)
unit_app = typer.Typer(help="Units (agencies) and their technical contacts.", no_args_is_help=True)
person_app = typer.Typer(help="People who hold certificates.", no_args_is_help=True)
position_app = typer.Typer(
    help="Positions: what a person's position lets them do in the portal.", no_args_is_help=True
)
token_app = typer.Typer(
    help="USB tokens: what is on yours (holder), stock and custody (office).",
    no_args_is_help=True,
)
cert_app = typer.Typer(help="Certificates: list, show, revoke.", no_args_is_help=True)
crl_app = typer.Typer(help="Certificate revocation lists.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
code_app = typer.Typer(help="One-time EST enrolment codes.", no_args_is_help=True)
ocsp_app = typer.Typer(help="The OCSP responder's pre-signed responses.", no_args_is_help=True)
journal_app = typer.Typer(help="The journal of every committed change.", no_args_is_help=True)
for sub, name in [
    (ca_app, "ca"),
    (unit_app, "unit"),
    (person_app, "person"),
    (position_app, "position"),
    (token_app, "token"),
    (cert_app, "cert"),
    (crl_app, "crl"),
    (audit_app, "audit"),
    (code_app, "enroll-code"),
    (ocsp_app, "ocsp"),
    (journal_app, "journal"),
]:
    app.add_typer(sub, name=name)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="certdesk.toml (default: ./certdesk.toml)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
YesOpt = Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation (scripts).")]
SerialArg = Annotated[
    str, typer.Argument(help="Serial in hex (colons and 0x allowed), or a unique prefix of 6+")
]

_state: dict[str, Path | None] = {"config": None}


def _print_version(asked: bool) -> None:
    if asked:
        from certdesk import __version__

        sys.stdout.write(f"certdesk {__version__}\n")
        raise typer.Exit()


@app.callback()
def _global(
    config: ConfigOpt = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            callback=_print_version,
            help="Print certdesk's version and exit.",
        ),
    ] = False,
) -> None:
    _state["config"] = config


def _registry() -> ModuleType:
    from certdesk.services import registry

    return registry


def context(config: Config | None = None) -> Context:
    """Configuration, database (migrated to the newest schema) and the acting officer."""
    from certdesk.services.context import Context

    config = config or load_config(_state["config"])
    return Context.open(config, actor=f"cli:{getpass.getuser()}")


# -- demo and CA ------------------------------------------------------------------------------


@app.command("init")
def init_demo() -> None:
    """Create the demo CA, unit, roles and person under ./var (does nothing the second time)."""
    from certdesk.services.demo import bootstrap, demo_guide

    ctx = context()
    with console.status("Setting up the demo… / 正在初始化演示环境…"):
        report = bootstrap(ctx)
    if report.created:
        say("Created: " + ", ".join(report.created), "已创建：" + "，".join(report.created))
    else:
        say("Everything was already set up.", "演示环境已存在，无需更改。")
    guide = demo_guide(ctx)
    say(
        f"Portal: {guide.url}/ once `certdesk serve` runs (status page {guide.url}/status). "
        f"Root CA to trust: {guide.root_pem}",
        f"门户：运行 `certdesk serve` 后访问 {guide.url}/（状态页 {guide.url}/status）。"
        f"需信任的根证书：{guide.root_pem}",
    )
    say(
        f"Demo people — import a PKCS#12 file into the browser, passphrase {guide.passphrase}:",
        f"演示人员——将 PKCS#12 文件导入浏览器，口令 {guide.passphrase}：",
    )
    for person in guide.people:
        line = f"  {person.person_id:<11} {person.position:<24} "
        say(
            line + (str(person.p12) if person.p12 else "(no file: enrol onto a token)"),
            line + (str(person.p12) if person.p12 else "（无文件：写入 USB Key）"),
        )


@ca_app.command("init")
def ca_init() -> None:
    """Create the root and issuing CA from the [ca] configuration."""
    from certdesk.services.ca_hierarchy import init_hierarchy

    with console.status("Creating CA keys and certificates… / 正在生成 CA 密钥和证书…"):
        root, issuing = init_hierarchy(context())
    say(
        f"Root CA: {root.subject}\nIssuing CA: {issuing.subject}",
        f"根 CA：{root.subject}\n签发 CA：{issuing.subject}",
    )


@ca_app.command("show")
def ca_show(as_json: JsonOpt = False) -> None:
    """Show the CAs (root and issuing generations): keys, states, CRL numbers, fingerprints."""
    from certdesk.services.authorities import list_authorities

    ctx = context()
    with ctx.db.read() as conn:
        infos = list_authorities(conn)
    rows = [
        {
            "name": i.name,
            "role": i.role,
            "generation": i.generation,
            "state": i.state.value,
            "subject": i.subject,
            "key_type": i.key_type,
            "key": i.key_location,
            "serial": format(i.certificate.serial_number, "x"),
            "not_before": i.certificate.not_valid_before_utc.isoformat(),
            "not_after": i.certificate.not_valid_after_utc.isoformat(),
            "sha256_fingerprint": i.fingerprint,
            "crl_number": i.crl_number,
        }
        for i in infos
    ]
    if as_json:
        emit_json(rows)
        return
    for n, row in enumerate(rows):
        if n:
            console.print()
        fields(
            f"CA {row['name']} ({row['role']}, generation {row['generation']}, {row['state']})",
            [
                ("subject", row["subject"]),
                ("SHA-256 fingerprint", row["sha256_fingerprint"]),
                ("serial", row["serial"]),
                ("valid", f"{_minute(row['not_before'])} – {_minute(row['not_after'])} UTC"),
                ("key", f"{row['key_type']}, {row['key']}"),
                ("CRL number", row["crl_number"]),
            ],
        )


@ca_app.command("rollover")
def ca_rollover(
    key_uri: Annotated[
        str | None,
        typer.Option(
            "--key-uri",
            help="PKCS#11 URI of a key already on the HSM (default: a new key where [ca] "
            "key_storage says: an encrypted file, or generated on the HSM)",
        ),
    ] = None,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Make a new issuing CA generation; the current one stops issuing (asks first)."""
    from certdesk.services.rollover import plan_rollover, roll_over

    ctx = context()
    plan = plan_rollover(ctx, key_uri)
    retiring = [
        (
            f"{g.name} (generation {g.generation})",
            f"{g.valid_certificates} certificate(s) still valid"
            + (
                f", the last until {_minute(g.last_valid_until.isoformat())} UTC"
                if g.last_valid_until
                else ""
            ),
        )
        for g in plan.retiring
    ]
    fields(
        "Rollover / 签发 CA 更替",
        [
            ("new issuing CA / 新签发 CA", f"{plan.name} (generation {plan.generation})"),
            ("subject / 主题", plan.subject),
            ("key / 密钥", plan.key),
            *[(f"stops issuing / 停止签发: {name}", load) for name, load in retiring],
        ],
        to_stderr=True,
    )
    confirm(
        "Make the new issuing CA? It issues every certificate from now on. / "
        "确认生成新的签发 CA？此后所有证书均由其签发。",
        yes,
        action="certdesk ca rollover",
    )
    with console.status("Creating the new issuing CA… / 正在生成新的签发 CA…"):
        made = roll_over(ctx, key_uri)
    if as_json:
        emit_json(
            {
                "name": made.name,
                "generation": made.generation,
                "subject": made.subject,
                "sha256_fingerprint": made.fingerprint,
                "key": made.key_location,
                "retiring": [g.name for g in plan.retiring],
            }
        )
        return
    say(
        f"Issuing CA {made.name} ({made.subject}) issues from now on; "
        f"{', '.join(g.name for g in plan.retiring) or 'none'} stop(s) issuing.\n"
        f"SHA-256 {made.fingerprint}\n"
        "Restart `certdesk serve` and reload nginx: their client-CA file (pki/chain.pem) now "
        "holds the new issuing CA.",
        f"签发 CA {made.name}（{made.subject}）自此签发证书；"
        f"{'、'.join(g.name for g in plan.retiring) or '无'} 停止签发。\n"
        f"SHA-256 {made.fingerprint}\n"
        "请重启 `certdesk serve` 并重新加载 nginx：其客户端 CA 文件（pki/chain.pem）"
        "已包含新的签发 CA。",
    )


def _minute(iso: object) -> str:
    return str(iso)[:16].replace("T", " ")


# -- registry ---------------------------------------------------------------------------------


@unit_app.command("add")
def unit_add(
    code: str,
    name: str,
    contact_name: Annotated[str, typer.Option(help="Technical contact")] = "",
    contact_email: str = "",
    contact_phone: str = "",
) -> None:
    """Register a unit."""
    unit = _registry().add_unit(context(), code, name, contact_name, contact_email, contact_phone)
    say(f"Unit {unit.code} added.", f"已添加单位 {unit.code}。")


@unit_app.command("list")
def unit_list(as_json: JsonOpt = False) -> None:
    """Units with their technical contact."""
    units = _registry().list_units(context())
    if as_json:
        emit_json([dataclasses.asdict(u) for u in units])
    else:
        table(
            "Units / 单位",
            ["code", "name", "contact", "e-mail", "phone"],
            [[u.code, u.name, u.contact_name, u.contact_email, u.contact_phone] for u in units],
        )


@person_app.command("add")
def person_add(
    person_id: str,
    name: Annotated[str, typer.Option(help="Full name")],
    unit: Annotated[str, typer.Option(help="Unit code")],
    email: Annotated[str, typer.Option(help="E-mail address")],
    phone: str = "",
    position: Annotated[str | None, typer.Option(help="Position code")] = None,
) -> None:
    """Register a person."""
    person = _registry().add_person(context(), person_id, name, unit, email, phone, position)
    say(f"Person {person.person_id} added.", f"已添加人员 {person.person_id}。")


@position_app.command("list")
def position_list(as_json: JsonOpt = False) -> None:
    """The positions a person can be given (`person add --position CODE`)."""
    positions = _registry().list_positions(context())
    if as_json:
        emit_json([dataclasses.asdict(p) for p in positions])
    else:
        table("Positions / 岗位", ["code", "name"], [[p.code, p.name] for p in positions])


def _person_row(p: Person) -> list[str | None]:
    return [p.person_id, p.name, p.unit_code, p.position_code, p.email, p.state.value]


@person_app.command("locale")
def person_locale(person_id: str, language: str) -> None:
    """Set the language of a holder's reminders: zh-CN or en."""
    _registry().set_locale(context(), person_id, language)
    say(f"{person_id}: reminders in {language}.", f"{person_id}：提醒语言设为 {language}。")


@person_app.command("list")
def person_list(
    unit: Annotated[str | None, typer.Option(help="Only this unit")] = None,
    as_json: JsonOpt = False,
) -> None:
    """People in the registry: unit, position, e-mail and state (active or departed)."""
    people = _registry().list_people(context(), unit)
    if as_json:
        emit_json([dataclasses.asdict(p) for p in people])
    else:
        table(
            "People / 人员",
            ["id", "name", "unit", "position", "e-mail", "state"],
            [_person_row(p) for p in people],
        )


@person_app.command("show")
def person_show(person_id: str, as_json: JsonOpt = False) -> None:
    """One person with their certificates."""
    from certdesk.services.certificates import list_certificates

    ctx = context()
    person = _registry().find_person(ctx, person_id)
    certs = list_certificates(ctx, person_id=person_id)
    if as_json:
        emit_json({**dataclasses.asdict(person), "certificates": [c.as_dict() for c in certs]})
        return
    table(
        "Person / 人员",
        ["id", "name", "unit", "position", "e-mail", "state"],
        [_person_row(person)],
    )
    _cert_table(certs)


# -- tokens -----------------------------------------------------------------------------------


@token_app.command("init")
def token_init(
    serial: Annotated[str, typer.Option(help="Token serial number (as printed on the token)")],
    model: str = "",
) -> None:
    """Put a token into stock."""
    from certdesk.services.tokens import register_token

    token = register_token(context(), serial, model)
    say(f"Token {token.serial} is in stock.", f"USB Key {token.serial} 已入库。")


@token_app.command("stock")
def token_stock(as_json: JsonOpt = False) -> None:
    """Office: tokens in the registry with their state and keeper."""
    from certdesk.services.tokens import list_tokens

    tokens = list_tokens(context())
    if as_json:
        emit_json([dataclasses.asdict(t) for t in tokens])
    else:
        table(
            "Tokens / USB Key",
            ["serial", "model", "state", "keeper", "PIN changed"],
            [[t.serial, t.model, t.state.value, t.keeper_id, t.pin_changed] for t in tokens],
        )


@token_app.command("assign")
def token_assign(serial: str, person_id: str) -> None:
    """Hand a token to its one keeper."""
    from certdesk.services.tokens import assign_token

    token = assign_token(context(), serial, person_id)
    say(
        f"Token {token.serial} is kept by {token.keeper_id}.",
        f"USB Key {token.serial} 已交由 {token.keeper_id} 保管。",
    )


@token_app.command("return")
def token_return(serial: str) -> None:
    """Record that a token came back to the office."""
    from certdesk.services.tokens import return_token

    token = return_token(context(), serial)
    say(f"Token {token.serial} returned.", f"USB Key {token.serial} 已退还。")


# -- enrolment --------------------------------------------------------------------------------


@app.command("enroll")
def enroll(
    person_id: str,
    token_label: Annotated[
        str | None, typer.Option(help="Enrol onto this PKCS#11 token (key made on the token)")
    ] = None,
    pin: Annotated[str | None, typer.Option(help="Token user PIN (asked for if missing)")] = None,
    csr: Annotated[
        Path | None, typer.Option(help="Issue for this CSR (PEM or DER) instead")
    ] = None,
    p12: Annotated[
        Path | None, typer.Option(help="No token: write key + certificate to this PKCS#12 file")
    ] = None,
    p12_passphrase: Annotated[
        str | None,
        typer.Option(
            help="Passphrase of the PKCS#12 file, 8 characters or more (asked if missing)"
        ),
    ] = None,
    p12_passphrase_file: Annotated[
        Path | None,
        typer.Option(
            help="Read the PKCS#12 passphrase from the first line of this file ('-': standard "
            "input), for scripts: no terminal needed, not shown by ps"
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the certificate (PEM) here")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Issue a personal certificate: onto a token, from a CSR, or as a PKCS#12 file."""
    from certdesk.services.enrolment.officer import OfficerEnrolment
    from certdesk.services.issuance import Issuance

    chosen = [x for x in (token_label, csr, p12) if x is not None]
    if len(chosen) != 1:
        raise CertdeskError(
            "input.invalid", detail="give exactly one of --token-label, --csr or --p12"
        )
    for target in (p12, out):
        if target is not None and target.exists():  # refuse before anything is issued
            raise CertdeskError("input.invalid", detail=f"{target} exists; not overwritten")
    ctx = context()
    issuance = Issuance(ctx)
    if csr is not None:
        issued = issuance.issue(OfficerEnrolment.from_csr(ctx, person_id, _read(csr)))
    elif p12 is not None:
        from certdesk.services.enrolment.pkcs12 import enroll_pkcs12

        if p12_passphrase is not None:
            secret = p12_passphrase
        elif p12_passphrase_file is not None:
            secret = _first_line(p12_passphrase_file)
        else:
            prompt = "PKCS#12 passphrase (8+ characters) / PKCS#12 文件口令（至少 8 位）"
            secret = ask_secret(prompt, confirm=True)
        issued, data = enroll_pkcs12(issuance.issue, ctx, person_id, secret)
        _write_new(p12, data)
    else:
        from certdesk.services.enrolment.onto_token import enrol_onto_token

        assert token_label is not None
        secret = pin or ask_secret("Token PIN / USB Key PIN 码")
        issued = enrol_onto_token(issuance.issue, ctx, person_id, token_label, secret, say)
    if out is not None:
        _write_new(out, issued.pem)
    if as_json:
        emit_json(
            {
                "serial": issued.serial,
                "person": issued.person_id,
                "token": issued.token_serial,
                "pem": issued.pem.decode(),
            }
        )
        return
    start = f"{issued.certificate.not_valid_before_utc:%Y-%m-%d %H:%M}"
    end = f"{issued.certificate.not_valid_after_utc:%Y-%m-%d %H:%M}"
    say(
        f"Issued certificate {issued.serial} to {person_id}, valid {start} – {end} UTC.",
        f"已为 {person_id} 签发证书 {issued.serial}，有效期 {start} 至 {end}（UTC）。",
    )


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CertdeskError("input.invalid", detail=f"{path}: {exc.strerror}") from None


def _first_line(path: Path) -> str:
    """A secret given as a file (or '-': standard input): its first line, without the newline."""
    text = sys.stdin.readline() if str(path) == "-" else _read(path).decode("utf-8", "replace")
    return text.splitlines()[0] if text.splitlines() else ""


def _write_new(path: Path, data: bytes) -> None:
    """Write a file that must not exist yet (never overwrite a key or certificate)."""
    try:
        with path.open("xb") as fh:
            fh.write(data)
    except FileExistsError:
        raise CertdeskError("input.invalid", detail=f"{path} exists; not overwritten") from None


@code_app.command("create")
def enroll_code_create(
    person_id: str,
    hours: Annotated[int | None, typer.Option(help="Valid this many hours")] = None,
    as_json: JsonOpt = False,
) -> None:
    """A one-time code with which the person's EST client enrols (shown once, stored hashed)."""
    from certdesk.services.enrolment_codes import create_code

    code, expires = create_code(context(), person_id, hours)
    if as_json:
        emit_json({"person": person_id, "code": code, "expires_at": expires.isoformat()})
        return
    when = f"{expires:%Y-%m-%d %H:%M} UTC"
    say(
        f"Enrolment code for {person_id}: {code} (valid until {when}, usable once)",
        f"{person_id} 的注册码：{code}（有效期至 {when}，仅可使用一次）",
    )


# -- certificates -----------------------------------------------------------------------------


def _cert_table(certs: list) -> None:  # type: ignore[type-arg]
    table(
        "Certificates / 证书",
        ["serial", "profile", "state", "person", "token", "not after"],
        [
            [
                c.serial,
                c.profile,
                c.state.value,
                c.person_id,
                c.token_serial,
                f"{c.not_after:%Y-%m-%d %H:%M}" if c.not_after else "",
            ]
            for c in certs
        ],
    )


@cert_app.command("list")
def cert_list(
    person: Annotated[str | None, typer.Option(help="Only this person")] = None,
    state: Annotated[str | None, typer.Option(help="active, revoked, …")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Certificates, newest first (serials in full; `not after` in UTC)."""
    from certdesk.services.certificates import list_certificates

    certs = list_certificates(context(), person, state)
    if as_json:
        emit_json([c.as_dict() for c in certs])
    else:
        _cert_table(certs)


@cert_app.command("show")
def cert_show(
    serial: SerialArg,
    pem: Annotated[bool, typer.Option("--pem", help="Print the certificate as PEM")] = False,
    as_json: JsonOpt = False,
) -> None:
    """One certificate by its serial (or a unique prefix of 6+ hex digits)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from certdesk.services.certificates import get_certificate

    record = get_certificate(context(), serial, prefix=True)
    if pem:
        if record.der:
            sys.stdout.write(
                x509.load_der_x509_certificate(record.der).public_bytes(Encoding.PEM).decode()
            )
        return
    if as_json:
        emit_json(record.as_dict())
    else:
        fields("Certificate / 证书", list(record.as_dict().items()))


@cert_app.command("revoke")
def cert_revoke(
    serial: SerialArg,
    reason: Annotated[
        str, typer.Option(help="RFC 5280 reason, e.g. keyCompromise")
    ] = "unspecified",
    yes: YesOpt = False,
) -> None:
    """Revoke a certificate (asks first; --yes in scripts); it appears in the next CRL."""
    from certdesk.services.revocation import preview, revoke

    ctx = context()
    asked = preview(ctx, serial, reason)
    fields(
        "To be revoked / 将吊销",
        [
            ("serial / 序列号", asked.serial),
            ("holder / 持有人", f"{asked.person_id or '-'} ({asked.subject})"),
            ("state / 状态", asked.state.value),
            ("reason / 原因", asked.reason.value),
        ],
        to_stderr=True,
    )
    confirm(
        "Revoke this certificate? It cannot be undone. / 确认吊销此证书？吊销后不可恢复。",
        yes,
        action="certdesk cert revoke",
    )
    done = revoke(ctx, asked.serial, asked.reason)
    say(
        f"Certificate {done.serial} revoked ({done.reason.value}).",
        f"证书 {done.serial} 已吊销（{done.reason.value}）。",
    )


@crl_app.command("publish")
def crl_publish(
    issuer: Annotated[
        str, typer.Option(help="the CA's id: root, issuing, issuing-2… (`certdesk ca show`)")
    ] = "issuing",
    delta: Annotated[
        bool, typer.Option("--delta", help="A delta CRL against the last one")
    ] = False,
) -> None:
    """Build and publish a new CRL (DER and PEM under <data_dir>/pki)."""
    from certdesk.domain.crl_schedule import CRLKind
    from certdesk.services.crl_publish import publish_crl

    kind = CRLKind.DELTA if delta else CRLKind.COMPLETE
    with console.status("Building the CRL… / 正在生成证书吊销列表…"):
        done = publish_crl(context(), issuer, kind)
    say(
        f"CRL {done.issuer} #{done.number} ({done.kind}): {done.entries} entries, next update "
        f"{done.next_update.isoformat()} → {done.der_path}",
        f"CRL {done.issuer} 第 {done.number} 号（{'增量' if delta else '完整'}）："
        f"{done.entries} 条，下次更新 {done.next_update.isoformat()} → {done.der_path}",
    )


@crl_app.command("status")
def crl_status(as_json: JsonOpt = False) -> None:
    """Each CA's last complete and delta CRL, and whether a new one is due (and why)."""
    from certdesk.services.crl_publish import crl_status as status_of

    rows = []
    for s in status_of(context()):
        row: dict[str, object] = {"issuer": s.issuer}
        for kind, rec in (("complete", s.complete), ("delta", s.delta)):
            row[kind] = None if rec is None else dataclasses.asdict(rec)
        row["due"] = {k: v for k, v in dataclasses.asdict(s.due).items() if v}
        row["next_due_at"] = s.next_due_at
        rows.append(row)
    if as_json:
        emit_json(rows)
        return

    def brief(rec: object) -> str:
        if not isinstance(rec, dict):
            return "-"
        base = f" (base #{rec['base']})" if rec["base"] is not None else ""
        return (
            f"#{rec['number']}{base}, {_minute(rec['this_update'].isoformat())} → "
            f"{_minute(rec['next_update'].isoformat())}, {rec['entries']} entries"
        )

    def due(row: dict[str, object]) -> str:
        reasons = row["due"]
        if isinstance(reasons, dict) and reasons:
            return ", ".join(f"{kind}: {why}" for kind, why in reasons.items())
        return f"no (from {_minute(str(row['next_due_at']))})"

    table(
        "CRLs / 证书吊销列表",
        ["issuer", "complete", "delta", "due"],
        [[r["issuer"], brief(r["complete"]), brief(r["delta"]), due(r)] for r in rows],
        keep=("issuer",),
    )


@audit_app.command("verify")
def audit_verify(as_json: JsonOpt = False) -> None:
    """Check the audit hash chain; exits non-zero and names the record if it was tampered with."""
    from certdesk.services.audit_log import verify_chain

    with console.status("Verifying the audit chain… / 正在校验审计日志…"):
        report = verify_chain(context())
    if as_json:
        emit_json(
            {
                "records": report.records,
                "ok": report.ok,
                "checkpoint": dataclasses.asdict(report.checkpoint) if report.checkpoint else None,
                "problems": [dataclasses.asdict(p) for p in report.problems],
            }
        )
    elif report.ok:
        say(
            f"Audit chain intact: {report.records} records.",
            f"审计日志链完整：共 {report.records} 条记录。",
        )
        if report.checkpoint is not None:
            cp = report.checkpoint
            say(
                f"Matches the signed checkpoint of {cp.at} (record {cp.seq}).",
                f"与 {cp.at} 的签名检查点（第 {cp.seq} 条记录）一致。",
            )
    if not report.ok:
        first = report.problems[0]
        raise CertdeskError("audit.broken", seq=first.seq, detail=f"{first.kind}: {first.detail}")


@audit_app.command("checkpoint")
def audit_checkpoint(
    public_key: Annotated[
        bool,
        typer.Option("--public-key", help="Print the key that checks checkpoints, for an auditor."),
    ] = False,
) -> None:
    """Sign a checkpoint of the audit head now (kept with the journal; `audit verify` uses it)."""
    from certdesk.services.checkpoints import public_key_pem, write_checkpoint

    if public_key:
        sys.stdout.write(public_key_pem(context()))
        return
    point = write_checkpoint(context())
    if point is None:
        say("The audit head already has a checkpoint.", "审计日志的最新记录已有检查点。")
        return
    say(
        f"Checkpoint signed: record {point.seq}, {point.hash}.",
        f"已签名检查点：第 {point.seq} 条记录，{point.hash}。",
    )


@journal_app.command("status")
def journal_status(as_json: JsonOpt = False) -> None:
    """The journal's segments (oldest first; archive old ones, never the last) and its last
    record against the database's (docs/deployment.md, Backup and restore)."""
    from certdesk.services.journal import status

    found = status(context())
    if as_json:
        emit_json(dataclasses.asdict(found))
        return
    table("Journal segments / 日志段", ["segment", "bytes"], found.segments, keep=("segment",))
    say(
        f"Journal {found.directory}: last record {found.journal_last}; "
        f"database: record {found.database_head}.",
        f"日志 {found.directory}：最后记录 {found.journal_last}；"
        f"数据库：第 {found.database_head} 条。",
    )
    if found.refusal is not None:
        say(f"Writes are refused: {found.refusal}.", f"写入被拒绝：{found.refusal}。")


@app.command("backup")
def backup(
    dest: Annotated[Path, typer.Argument(help="A directory (a new file goes in it) or a file")],
) -> None:
    """Back up the database while it runs (SQLite: online backup API; PostgreSQL: pg_dump).
    Keep the CA keys, certdesk.toml, the passphrase and the journal too (docs/deployment.md)."""
    from certdesk.services.backup import take_backup

    done = take_backup(context(), dest)
    say(
        f"Backup ({done.kind}) of the database up to audit record {done.seq}: {done.path}",
        f"数据库备份（{done.kind}）至审计记录第 {done.seq} 条：{done.path}",
    )
    if done.kind == "pg_dump":
        say(
            "PostgreSQL: this is a pg_dump; base backups with WAL archiving also work "
            "(docs/deployment.md). Changes after it are in the journal.",
            "PostgreSQL：这是 pg_dump 备份；也可使用基础备份加 WAL 归档（见 docs/deployment.md）。"
            "其后的变更记录在日志中。",
        )


@app.command("restore")
def restore(
    backup_file: Annotated[
        Path | None,
        typer.Argument(help="The backup to put back (none: replay the journal into the database)"),
    ] = None,
    accept_loss: Annotated[
        bool,
        typer.Option(
            "--accept-loss",
            help="Accept what the journal cannot give back and start a new journal (audited).",
        ),
    ] = False,
) -> None:
    """Put a backup back (server stopped) and replay the journal: nothing since is forgotten."""
    from certdesk.services.backup import restore as run_restore

    config = load_config(_state["config"])
    with console.status("Restoring… / 正在恢复…"):
        done = run_restore(config, backup_file, f"cli:{getpass.getuser()}", accept_loss=accept_loss)
    if done.backup is not None:
        say(
            f"Database put back from {done.backup} (audit record {done.seq}).",
            f"已从 {done.backup} 恢复数据库（审计记录第 {done.seq} 条）。",
        )
    r = done.replayed
    if r.transactions:
        actions = ", ".join(f"{name} {n}" for name, n in sorted(r.actions.items()))
        say(
            f"Replayed from the journal: {r.transactions} transactions, records {r.first}–"
            f"{r.last} ({actions}).",
            f"已从日志重放：{r.transactions} 个事务，第 {r.first}–{r.last} 条记录（{actions}）。",
        )
    else:
        say("Nothing to replay from the journal.", "日志中没有需要重放的变更。")
    if done.loss_accepted is not None:
        say(
            f"Loss accepted (audited); new journal {done.loss_accepted}.",
            f"已确认接受丢失（已审计）；新日志 {done.loss_accepted}。",
        )
    if done.refusal is not None:
        raise done.refusal


@ocsp_app.command("presign")
def ocsp_presign(as_json: JsonOpt = False) -> None:
    """Sign the OCSP responses that are missing, near their nextUpdate or no longer true (and
    their files for nginx); renews a responder certificate past half its life."""
    from certdesk.services.ocsp import OcspResponder

    def step(issuer: str, looked: int, signed: int) -> None:
        progress(
            f"{issuer}: {looked} certificates looked at, {signed} responses signed",
            f"{issuer}：已检查 {looked} 张证书，已签 {signed} 个响应",
        )

    report = OcspResponder(context()).presign(progress=step)
    if as_json:
        emit_json(dataclasses.asdict(report))
        return
    say(
        f"OCSP: {report.signed} responses signed for {report.certificates} certificates of "
        f"{', '.join(report.issuers)} in {report.seconds:.1f} s.",
        f"OCSP：为 {', '.join(report.issuers)} 的 {report.certificates} 张证书签发 "
        f"{report.signed} 个响应，用时 {report.seconds:.1f} 秒。",
    )


@app.command("maintenance")
def maintenance(as_json: JsonOpt = False) -> None:
    """Close interrupted issuances, withdraw renewals never installed, forget old nonces, retire
    issuing CAs none of whose certificates is still valid."""
    from certdesk.services.maintenance import run_maintenance

    report = run_maintenance(context())
    if as_json:
        emit_json(dataclasses.asdict(report))
        return
    say(
        f"Interrupted issuances closed: {len(report.abandoned)}; uninstalled renewals "
        f"withdrawn: {len(report.withdrawn)}; used nonces forgotten: {report.nonces_forgotten}; "
        f"issuing CAs retired: {', '.join(report.retired) or 'none'}; "
        f"CRLs published: {', '.join(report.crls) or 'none'}.",
        f"关闭中断的签发 {len(report.abandoned)} 个；作废未安装的更新证书 "
        f"{len(report.withdrawn)} 张；清理已用随机数 {report.nonces_forgotten} 个；"
        f"退役的签发 CA：{'、'.join(report.retired) or '无'}；"
        f"发布 CRL：{', '.join(report.crls) or '无'}。",
    )


@app.command("remind")
def remind_now(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list what would be queued now.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Queue the expiry reminders and digests due now and deliver the outbox."""
    from certdesk.services import reminders

    ctx = context()
    if dry_run:
        planned = reminders.plan(ctx)
        if as_json:
            emit_json([dataclasses.asdict(p) for p in planned])
            return
        table(
            "Would send / 将发送",
            ["topic", "channel", "recipient", "locale"],
            [[p.topic, p.channel, p.recipient, p.locale] for p in planned],
        )
        return
    report = reminders.remind(ctx)
    if as_json:
        emit_json(dataclasses.asdict(report))
        return
    say(
        f"Queued {report.queued}; sent {report.sent}; to retry {report.retried}; "
        f"failed {report.failed}.",
        f"入队 {report.queued} 条；已发送 {report.sent} 条；待重试 {report.retried} 条；"
        f"失败 {report.failed} 条。",
    )


@app.command("outbox")
def outbox_log(
    state: Annotated[
        str | None, typer.Option(help="Only pending, sending, sent or failed messages.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The delivery log of reminders, digests and webhooks, newest first."""
    from certdesk.services.reminders import delivery_log

    rows = delivery_log(context(), state)
    if as_json:
        emit_json([dataclasses.asdict(r) for r in rows])
        return
    table(
        "Outbox / 发送记录",
        ["id", "topic", "channel", "recipient", "state", "attempts", "error"],
        [[r.id, r.topic, r.channel, r.recipient, r.state, r.attempts, r.last_error] for r in rows],
    )


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
    plain_http: Annotated[
        bool,
        typer.Option(
            "--plain-http", help="Plain HTTP on loopback, for nginx in front (server.tls = false)"
        ),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(help="Application processes on the one socket (server.workers; PostgreSQL)"),
    ] = None,
    listen_fd: Annotated[int | None, typer.Option(hidden=True)] = None,  # a worker's socket
    worker_index: Annotated[int, typer.Option(hidden=True)] = 0,  # which one (server.cpus)
) -> None:
    """Serve HTTPS (portal, EST, renewal API, CA certificates, CRLs)."""
    import socket

    from certdesk.services.backup import hold_server_lock
    from certdesk.services.ca_hierarchy import export_certificates
    from certdesk.services.jobs import runner_for
    from certdesk.services.journal import require_trusted
    from certdesk.services.maintenance import add_background_jobs, run_maintenance
    from certdesk.services.ocsp import OcspResponder
    from certdesk.services.ocsp_responders import ensure_responders
    from certdesk.services.processes import check_workers, pin_to_cpu
    from certdesk.services.server_tls import ensure_tls_certificate
    from certdesk.web.server import claim_port
    from certdesk.web.server import serve as run_server
    from certdesk.web.workers import supervise

    # --host/--port/--plain-http are the configuration for this run, so the URLs the server
    # writes into certificates (derived from server.port unless urls.base is set) follow them
    given = {"host": host, "port": port, "tls": False if plain_http else None, "workers": workers}
    config = load_config(_state["config"])
    config = config.replace(server={k: v for k, v in given.items() if v is not None})
    check_workers(config, config.server.workers)
    worker = listen_fd is not None  # one of `--workers N`: the supervisor did the start-up work
    if worker or config.server.workers == 1:  # an application process (not a supervisor)
        pin_to_cpu(config, worker_index)
    if worker:
        listener = socket.socket(fileno=listen_fd)
    else:
        listener = claim_port(config)  # before anything else: a taken port changes nothing
        hold_server_lock(config)  # `certdesk restore` refuses while this process lives
    ctx = context(config)
    require_trusted(ctx)  # a journal that cannot be trusted: say so now, write nothing
    runner = runner_for(ctx)  # periodic work of this process, on one thread
    if not worker:
        if runner.lead():  # the jobs are ours: close what a crash interrupted, audited
            report = run_maintenance(ctx)
            if report.abandoned:
                n = len(report.abandoned)
                say(f"Closed {n} interrupted issuance(s).", f"已关闭 {n} 个中断的签发。")
        ensure_tls_certificate(ctx)
        ensure_responders(ctx)  # OCSP answers from the first request on
        export_certificates(ctx)  # this machine's client-CA file, current after a rollover
    if config.server.workers > 1 and not worker:
        runner.stop()  # the workers take the lease; this process only watches them
        ctx.db.dispose()
        args = ["--config", str(_state["config"])] if _state["config"] else []
        args += ["serve", "--host", config.server.host, "--port", str(config.server.port)]
        supervise(
            listener, config.server.workers, args + ([] if config.server.tls else ["--plain-http"])
        )
        return
    ocsp = OcspResponder(ctx)
    add_background_jobs(runner, ctx, ocsp)
    runner.start()
    run_server(ctx, listener, ocsp)


@app.command("worker")
def worker() -> None:
    """Run the background jobs only (no web): maintenance, CRLs, OCSP pre-signing, reminders,
    in whichever process of the installation holds the jobs lease."""
    import signal
    import threading

    from certdesk.services.jobs import lease_holder, runner_for
    from certdesk.services.journal import require_trusted
    from certdesk.services.maintenance import add_background_jobs
    from certdesk.services.ocsp import OcspResponder
    from certdesk.services.ocsp_responders import ensure_responders

    ctx = context()
    require_trusted(ctx)
    ensure_responders(ctx)
    runner = runner_for(ctx)
    ocsp = OcspResponder(ctx)
    add_background_jobs(runner, ctx, ocsp)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    holder = "this process" if runner.lead() else str(lease_holder(ctx))
    say(f"Running the jobs; lease held by {holder}.", f"正在运行后台任务；租约持有者：{holder}。")
    runner.start()
    stop.wait()
    runner.stop()


@app.command("jobs")
def jobs_status(as_json: JsonOpt = False) -> None:
    """Who runs the background jobs now (the holder of the jobs lease)."""
    from certdesk.services.jobs import lease_holder

    holder = lease_holder(context())
    if as_json:
        emit_json({"holder": holder})
        return
    if holder is None:
        say(
            "Nobody holds the jobs lease (no server running?).",
            "没有进程持有后台任务租约（服务未运行？）。",
        )
    else:
        say(f"Jobs lease held by: {holder}", f"后台任务租约持有者：{holder}")


holder.register(app, token_app)
requests.register(app, context)
positions.register(app, position_app, context)


def main() -> None:
    try:
        app()
    except CertdeskError as exc:
        sys.exit(fail(exc))
