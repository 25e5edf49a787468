"""Message catalog: stable code -> HTTP status, English and Simplified Chinese templates.

Templates use `str.format` fields; a missing field is shown as `?` rather than failing, so a
refusal never turns into a crash while it is being explained.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any, Literal

Locale = Literal["en", "zh-CN"]


@dataclass(frozen=True)
class Message:
    status: int
    en: str
    zh: str


CATALOG: dict[str, Message] = {
    # input formats
    "input.malformed_pem": Message(
        400,
        "The data is not valid PEM or DER: {detail}",
        "数据不是有效的 PEM 或 DER 格式：{detail}",
    ),
    "input.malformed_csr": Message(
        400,
        "The certificate request cannot be parsed: {detail}",
        "无法解析证书请求（CSR）：{detail}",
    ),
    "input.csr_too_large": Message(
        413,
        "The certificate request is {size} bytes; at most {limit} are accepted.",
        "证书请求大小为 {size} 字节，最多只接受 {limit} 字节。",
    ),
    "input.csr_bad_signature": Message(
        400,
        "The certificate request's signature does not verify; it was altered or not made with its key.",
        "证书请求的签名验证失败：请求被篡改，或不是用其自身密钥生成的。",
    ),
    "input.unsupported_key": Message(
        400,
        "Unsupported key: {detail}. Use ECDSA P-256/P-384 or RSA 2048/3072/4096.",
        "不支持的密钥：{detail}。请使用 ECDSA P-256/P-384 或 RSA 2048/3072/4096。",
    ),
    "input.invalid": Message(400, "Invalid input: {detail}", "输入无效：{detail}"),
    "input.bad_characters": Message(
        400,
        "The {field} contains a character that cannot go into a certificate or a record "
        "(a control, line-break, escape or bidirectional-override character).",
        "{field} 含有不能写入证书或记录的字符（控制符、换行、转义符或双向文本覆盖符）。",
    ),
    "input.too_long": Message(
        400,
        "The {field} is longer than {limit} characters, the most a certificate allows.",
        "{field} 超过 {limit} 个字符，超出证书允许的长度。",
    ),
    "input.bad_key": Message(
        400,
        "The {field} {value!r} is not valid: use letters and digits, with single dots, "
        "hyphens or underscores between them, at most 64 characters.",
        "{field} {value!r} 无效：只能使用字母和数字，中间可用单个点号、连字符或下划线，最多 64 个字符。",
    ),
    "input.bad_code": Message(
        400,
        "The {field} {value!r} is not valid: use letters and digits, with single dots or "
        "hyphens between them, at most 64 characters.",
        "{field} {value!r} 无效：只能使用字母和数字，中间可用单个点号或连字符，最多 64 个字符。",
    ),
    # the request itself, refused before any of it is parsed
    "request.too_large": Message(
        413,
        "The request body is too large: at most {limit} bytes are accepted here. Nothing was stored.",
        "请求内容过大：此处最多接受 {limit} 字节。未保存任何内容。",
    ),
    "request.unknown_host": Message(
        421,
        "This server does not answer for the host named in the request; use {base}.",
        "本服务器不响应请求中指定的主机名；请使用 {base}。",
    ),
    "route.not_found": Message(404, "There is nothing at this address.", "此地址没有对应的内容。"),
    "request.method_not_allowed": Message(
        405,
        "This address does not accept the method {method}.",
        "此地址不接受 {method} 请求方法。",
    ),
    # registry
    "unit.not_found": Message(404, "Unknown unit {code!r}.", "单位 {code!r} 不存在。"),
    "unit.duplicate": Message(
        409, "A unit with code {code!r} already exists.", "单位代码 {code!r} 已存在。"
    ),
    "person.not_found": Message(
        404, "Unknown person {person_id!r}.", "人员 {person_id!r} 不存在。"
    ),
    "person.duplicate": Message(
        409, "A person with id {person_id!r} already exists.", "人员编号 {person_id!r} 已存在。"
    ),
    "person.departed": Message(
        409,
        "{person_id!r} has departed; no certificate can be issued.",
        "人员 {person_id!r} 已离职离岗，不能签发证书。",
    ),
    "person.has_active_certificate": Message(
        409,
        "{person_id!r} already has an active certificate (serial {serial}); revoke it first or renew it.",
        "人员 {person_id!r} 已有有效证书（序列号 {serial}），请先吊销或更新该证书。",
    ),
    "position.not_found": Message(
        404,
        "Unknown position {code!r}. Known positions: {known} (certdesk position list).",
        "岗位 {code!r} 不存在。已有岗位：{known}（certdesk position list）。",
    ),
    "role.not_found": Message(
        404,
        "Unknown role {code!r}. Known roles: {known}.",
        "角色 {code!r} 不存在。已有角色：{known}。",
    ),
    "token.not_found": Message(404, "Unknown token {serial!r}.", "USB Key {serial!r} 不存在。"),
    "token.duplicate": Message(
        409, "Token {serial!r} is already registered.", "USB Key {serial!r} 已登记。"
    ),
    "token.issued_to_other": Message(
        409,
        "Token {serial!r} is issued to {keeper!r}; one keeper per token. Have it returned first.",
        "USB Key {serial!r} 已发放给 {keeper!r}，每个 USB Key 只能由一人保管，请先办理退还。",
    ),
    "token.not_available": Message(
        409,
        "Token {serial!r} is {state}; it cannot be issued.",
        "USB Key {serial!r} 当前状态为 {state}，不能发放。",
    ),
    "cert.not_found": Message(
        404, "Unknown certificate serial {serial}.", "序列号为 {serial} 的证书不存在。"
    ),
    "cert.serial_too_short": Message(
        400,
        "No certificate has serial {serial}, and a serial prefix needs at least {minimum} hex digits ({digits} given).",
        "没有序列号为 {serial} 的证书；按序列号前缀查找至少需要 {minimum} 位十六进制数字（当前 {digits} 位）。",
    ),
    "cert.ambiguous_serial": Message(
        400,
        "Serial prefix {serial} matches several certificates: {candidates}. Give more digits.",
        "序列号前缀 {serial} 对应多张证书：{candidates}。请输入更多位数。",
    ),
    "cert.already_revoked": Message(
        409,
        "Certificate {serial} is already revoked ({reason}, {revoked_at}).",
        "证书 {serial} 已于 {revoked_at} 吊销（原因：{reason}）。",
    ),
    "cert.not_revocable": Message(
        409,
        "Certificate {serial} is {state}; it cannot be revoked.",
        "证书 {serial} 当前状态为 {state}，不能吊销。",
    ),
    "lifecycle.not_allowed": Message(
        409,
        "A {kind} cannot go from {before} to {after}; nothing was changed.",
        "{kind} 不能从 {before} 变为 {after}，未作任何更改。",
    ),
    "cert.state_changed": Message(
        409,
        "Certificate {serial} changed state while this request was handled; try again.",
        "处理本请求期间证书 {serial} 的状态已变化，请重试。",
    ),
    "token.state_changed": Message(
        409,
        "Token {key} changed state while this request was handled; try again.",
        "处理本请求期间 USB Key {key} 的状态已变化，请重试。",
    ),
    "authority.state_changed": Message(
        409,
        "CA {key} changed state while this request was handled; try again.",
        "处理本请求期间 CA {key} 的状态已变化，请重试。",
    ),
    "person.state_changed": Message(
        409,
        "The record of {key} changed while this request was handled; try again.",
        "处理本请求期间人员 {key} 的记录已变化，请重试。",
    ),
    "revocation.bad_reason": Message(
        400,
        "Unknown revocation reason {reason!r}; use one of: {allowed}.",
        "吊销原因 {reason!r} 无效，可用的原因：{allowed}。",
    ),
    # CA and keys
    "ca.not_initialised": Message(
        409,
        "The CA is not initialised; run `certdesk ca init` (or `certdesk init` for the demo).",
        "CA 尚未初始化，请先运行 `certdesk ca init`（演示环境可运行 `certdesk init`）。",
    ),
    "crl.no_base": Message(
        409,
        "CA {issuer} has no complete CRL yet; a delta CRL needs one as its base (`certdesk crl publish`).",
        "CA {issuer} 尚未发布完整 CRL，增量 CRL 需要以它为基础（请先运行 `certdesk crl publish`）。",
    ),
    "ca.already_initialised": Message(
        409,
        "The CA is already initialised ({name}); nothing was changed.",
        "CA 已初始化（{name}），未作任何更改。",
    ),
    "ca.key_in_use": Message(
        409,
        "The key {key} is already the key of CA {name}; a new generation needs a new key. Nothing was changed.",
        "密钥 {key} 已是 CA {name} 的密钥；新一代签发 CA 需要新的密钥。未作任何更改。",
    ),
    "ca.wrong_passphrase": Message(
        401,
        "Wrong passphrase for the CA key {path}.",
        "CA 私钥 {path} 的口令错误。",
    ),
    "ca.no_passphrase": Message(
        400,
        "No passphrase for the CA keys: set ca.passphrase, CERTDESK_CA_PASSPHRASE or ca.passphrase_file.",
        "未提供 CA 私钥口令：请设置 ca.passphrase、CERTDESK_CA_PASSPHRASE 或 ca.passphrase_file。",
    ),
    "ca.key_missing": Message(
        500, "The CA key {where} cannot be found.", "找不到 CA 私钥 {where}。"
    ),
    "ca.signing_failed": Message(
        500,
        "The CA could not sign the certificate: {detail}. Nothing was issued; try again.",
        "CA 签名失败：{detail}。未签发任何证书，请重试。",
    ),
    "ca.lint_failed": Message(
        500,
        "The certificate was not signed: the profile check failed: {detail}",
        "证书未签发：证书模板检查未通过：{detail}",
    ),
    # PKCS#11 and tokens
    "pkcs11.module_missing": Message(
        500,
        "PKCS#11 module {module!r} cannot be loaded: {detail}. Install the token's driver "
        "(SoftHSM: apt install softhsm2) or set pkcs11.module.",
        "无法加载 PKCS#11 模块 {module!r}：{detail}。请安装 USB Key 驱动"
        "（SoftHSM：apt install softhsm2）或设置 pkcs11.module。",
    ),
    "pkcs11.no_token": Message(
        404,
        "No token {token!r} is present (PKCS#11 module {module}). Insert the USB key and try again. {hint}",
        "未找到 USB Key {token!r}（PKCS#11 模块 {module}），请插入 USB Key 后重试。{hint_zh}",
    ),
    "pkcs11.wrong_pin": Message(
        401,
        "Wrong PIN for token {token!r}. {tries}",
        "USB Key {token!r} 的 PIN 码错误。{tries_zh}",
    ),
    "pkcs11.pin_locked": Message(
        423,
        "Token {token!r} is locked after too many wrong PINs; an officer must unblock it with the SO PIN.",
        "USB Key {token!r} 因 PIN 码错误次数过多已锁定，请由管理员使用 SO PIN 解锁。",
    ),
    "pkcs11.pin_length": Message(
        400,
        "Token {token!r} accepts PINs of {minimum} to {maximum} characters; the new PIN has {length}. Nothing was changed.",
        "USB Key {token!r} 的 PIN 码长度须为 {minimum} 至 {maximum} 位，新 PIN 码为 {length} 位。未作任何更改。",
    ),
    "pkcs11.pin_refused": Message(
        400,
        "Token {token!r} refuses the new PIN ({detail}); it may be too short, too long or too simple for this token. Nothing was changed.",
        "USB Key {token!r} 拒绝了新 PIN 码（{detail}）：可能过短、过长或过于简单。未作任何更改。",
    ),
    "pkcs11.object_missing": Message(
        404,
        "No object {uri!r} on the token.",
        "USB Key 上没有对象 {uri!r}。",
    ),
    "pkcs11.bad_uri": Message(
        400, "Not a usable PKCS#11 URI {uri!r}: {detail}", "PKCS#11 URI {uri!r} 无效：{detail}"
    ),
    "pkcs11.error": Message(500, "Token operation failed: {detail}", "USB Key 操作失败：{detail}"),
    # audit
    "audit.broken": Message(
        500,
        "The audit chain is broken at record {seq}: {detail}",
        "审计日志链在第 {seq} 条记录处断裂：{detail}",
    ),
    # backup, restore and the journal (a CA must never forget a revocation)
    "journal.missing": Message(
        503,
        "The journal {path} is missing, but this database was written with one. If the database is a restored copy, every change after record {seq} ({at}) may be missing: put the journal back, or accept the loss with `certdesk restore --accept-loss`. Nothing is written until then.",
        "日志文件 {path} 缺失，但本数据库曾使用日志。若数据库是恢复的副本，第 {seq} 条记录（{at}）之后的所有变更可能丢失：请放回日志文件，或执行 `certdesk restore --accept-loss` 确认接受丢失。在此之前不写入任何数据。",
    ),
    "journal.unreadable": Message(
        503,
        "The journal {path} cannot be read from line {line} ({detail}): changes after record {seq} ({at}) may be missing. Repair it from a copy, or accept the loss with `certdesk restore --accept-loss`. Nothing is written until then.",
        "日志文件 {path} 自第 {line} 行起无法读取（{detail}）：第 {seq} 条记录（{at}）之后的变更可能丢失。请用副本修复，或执行 `certdesk restore --accept-loss` 确认接受丢失。在此之前不写入任何数据。",
    ),
    "journal.gap": Message(
        503,
        "The journal {path} begins after record {base}, the database ends at record {db_seq}: records {db_seq}–{base} are in neither. Use a newer backup, or accept the loss with `certdesk restore --accept-loss`.",
        "日志文件 {path} 从第 {base} 条记录之后开始，而数据库止于第 {db_seq} 条：第 {db_seq}–{base} 条记录两处都没有。请使用更新的备份，或执行 `certdesk restore --accept-loss` 确认接受丢失。",
    ),
    "journal.ahead_of_database": Message(
        503,
        "The database ends at record {db_seq} but the journal {path} holds records up to {journal_seq}: the database is an older copy. Run `certdesk restore` to replay what is missing. Nothing is written until then.",
        "数据库止于第 {db_seq} 条记录，而日志文件 {path} 记录到第 {journal_seq} 条：数据库是旧副本。请执行 `certdesk restore` 补回缺失的变更。在此之前不写入任何数据。",
    ),
    "journal.behind_database": Message(
        503,
        "The journal {path} ends at record {journal_seq}, the database at {db_seq}: records after {journal_seq} are not in the journal and a restore could not bring them back. Put the right journal back, or accept with `certdesk restore --accept-loss` (a new journal starts).",
        "日志文件 {path} 止于第 {journal_seq} 条记录，数据库止于第 {db_seq} 条：第 {journal_seq} 条之后的记录不在日志中，恢复时无法找回。请放回正确的日志文件，或执行 `certdesk restore --accept-loss` 确认（将开始新的日志）。",
    ),
    "journal.mismatch": Message(
        503,
        "The journal {path} and the database differ at record {seq}: they are not the same history. Use the journal of this database, or accept with `certdesk restore --accept-loss`.",
        "日志文件 {path} 与数据库在第 {seq} 条记录处不一致，二者不是同一历史。请使用本数据库的日志，或执行 `certdesk restore --accept-loss` 确认。",
    ),
    "journal.in_doubt": Message(
        503,
        "The journal {path} ends with records {first}–{last} ({at}) whose commit cannot be confirmed after a restore; they were not replayed. If they did commit, they are missing. Accept with `certdesk restore --accept-loss`.",
        "日志文件 {path} 末尾的第 {first}–{last} 条记录（{at}）在恢复后无法确认是否已提交，未予重放；若已提交，则这些变更缺失。请执行 `certdesk restore --accept-loss` 确认。",
    ),
    "journal.replay_failed": Message(
        500,
        "Replaying the journal did not give back record {seq} as it was; the restore stopped there.",
        "重放日志未能还原第 {seq} 条记录，恢复在此停止。",
    ),
    "server.already_running": Message(
        409,
        "A certdesk server is running on {path}; stop it first.",
        "certdesk 服务正在使用 {path}，请先停止服务。",
    ),
    "backup.exists": Message(
        409,
        "{path} already exists; a backup never overwrites a file.",
        "{path} 已存在，备份不会覆盖已有文件。",
    ),
    "backup.not_found": Message(404, "No backup file {path}.", "备份文件 {path} 不存在。"),
    "backup.tool_missing": Message(
        500,
        "{tool} is not installed; for PostgreSQL, back up with pg_dump or base backups (docs/deployment.md).",
        "未安装 {tool}；PostgreSQL 请使用 pg_dump 或基础备份（见 docs/deployment.md）。",
    ),
    "backup.failed": Message(500, "{tool} failed: {detail}", "{tool} 执行失败：{detail}"),
    "issuance.reservation_closed": Message(
        409,
        "The issuance of {serial} was closed as interrupted before it could be recorded; nothing was issued. Try again.",
        "证书 {serial} 的签发在记录前已被视为中断并关闭，未签发任何证书，请重试。",
    ),
    # renewal (the notice: only in the last month, identity from the registry, never edited)
    "renewal.too_early": Message(
        403,
        "Renewal is possible only in the last {days} days of validity. This certificate expires on {not_after}; renewal opens on {opens_at}.",
        "证书有效期剩余不足 {days} 天时方可更新。本证书于 {not_after} 到期，可于 {opens_at} 起更新。",
    ),
    "renewal.expired": Message(
        403,
        "The certificate expired on {not_after} and can no longer be renewed. Ask the registration office to re-enrol you: {contacts}.",
        "证书已于 {not_after} 过期，无法再自助更新。请联系证书受理点重新办理：{contacts}。",
    ),
    "renewal.revoked": Message(
        403,
        "The certificate was revoked ({reason}) and cannot be renewed. Contact the registration office: {contacts}.",
        "证书已被吊销（{reason}），无法更新。请联系证书受理点：{contacts}。",
    ),
    "renewal.superseded": Message(
        403,
        "This certificate was already renewed and replaced by {by}. Use the new certificate and remove the old one from your browser.",
        "该证书已更新，新证书为 {by}。请使用新证书，并从浏览器中删除旧证书。",
    ),
    "renewal.not_active": Message(
        403,
        "The certificate is {state}; only an active certificate can be renewed.",
        "证书状态为 {state}，只有有效的证书才能更新。",
    ),
    "enrolment.identity_change": Message(
        403,
        "The request asks for {field} {asked!r}, but the registry holds {registered!r}. Your data cannot be changed here; contact the registration office: {contacts}.",
        "请求中的{field} {asked!r} 与登记信息 {registered!r} 不符。个人信息不能在此修改，请联系证书受理点：{contacts}。",
    ),
    "renewal.same_key": Message(
        400,
        "The new certificate needs a new key pair; the request reuses the current certificate's key.",
        "更新证书必须使用新的密钥对，此请求沿用了当前证书的密钥。",
    ),
    "renewal.unknown_certificate": Message(
        401,
        "Certificate {serial} was not issued by this CA.",
        "证书 {serial} 不是本 CA 签发的。",
    ),
    "renewal.nothing_pending": Message(
        404,
        "No renewed certificate is waiting to be installed for certificate {serial}; start a renewal.",
        "证书 {serial} 没有待安装的更新证书，请重新发起更新。",
    ),
    "renewal.in_progress": Message(
        409,
        "A renewal of certificate {serial} is being issued right now; try again in a moment (certdesk renew --pickup).",
        "证书 {serial} 的更新正在签发中，请稍后重试（certdesk renew --pickup）。",
    ),
    "renewal.not_pending": Message(
        409,
        "Certificate {serial} is not waiting for installation (state {state}).",
        "证书 {serial} 不在待安装状态（当前状态 {state}）。",
    ),
    "renewal.pending_expired": Message(
        410,
        "The renewed certificate {serial} was not installed within {hours} hours and is withdrawn; renew again.",
        "更新证书 {serial} 未在 {hours} 小时内安装，已作废，请重新更新。",
    ),
    # signed requests (JWS) and nonces
    "jws.malformed": Message(
        400, "The signed request cannot be read: {detail}", "无法读取签名请求：{detail}"
    ),
    "jws.bad_algorithm": Message(
        400,
        "Signature algorithm {alg!r} is not accepted for this certificate; expected {expected}.",
        "该证书不接受签名算法 {alg!r}，应为 {expected}。",
    ),
    "jws.bad_signature": Message(
        401,
        "The request's signature does not verify with the key of certificate {serial}.",
        "请求签名无法用证书 {serial} 的公钥验证。",
    ),
    "jws.wrong_action": Message(
        400,
        "The signed request is for {got!r}, not {expected!r}.",
        "该签名请求用于 {got!r}，而不是 {expected!r}。",
    ),
    "nonce.invalid": Message(
        400,
        "The nonce was not issued by this server; fetch a new one.",
        "随机数（nonce）不是本服务器签发的，请重新获取。",
    ),
    "nonce.expired": Message(
        400,
        "The nonce has expired (valid for {seconds} s); fetch a new one.",
        "随机数（nonce）已过期（有效期 {seconds} 秒），请重新获取。",
    ),
    "nonce.used": Message(
        400,
        "The nonce was already used (a replayed request); fetch a new one.",
        "随机数（nonce）已被使用（重放的请求），请重新获取。",
    ),
    "token.no_token_recorded": Message(
        404,
        "Certificate {serial} is not recorded on a token.",
        "证书 {serial} 未登记在任何 USB Key 上。",
    ),
    # EST enrolment codes
    "enrolcode.invalid": Message(
        401,
        "The enrolment code is wrong or belongs to someone else.",
        "注册码错误，或不属于该用户。",
    ),
    "enrolcode.used": Message(
        401,
        "The enrolment code was already used on {used_at}; ask the office for a new one.",
        "注册码已于 {used_at} 使用过，请向受理点申请新的注册码。",
    ),
    "enrolcode.expired": Message(
        401,
        "The enrolment code expired on {expires_at}; ask the office for a new one.",
        "注册码已于 {expires_at} 过期，请向受理点申请新的注册码。",
    ),
    "enrolcode.other_key": Message(
        409,
        "The enrolment code was already used on {used_at} for another key. Send the request "
        "made with that key again, or ask the office for a new code.",
        "注册码已于 {used_at} 用于另一把密钥。请用当时的密钥重新提交请求，或向受理点申请新的注册码。",
    ),
    "enrolcode.issued": Message(
        409,
        "This enrolment code already issued certificate {serial} for this key.",
        "该注册码已为此密钥签发证书 {serial}。",
    ),
    "enrolcode.in_progress": Message(
        409,
        "An enrolment with this code is being finished (certificate {serial}); try again in a "
        "moment.",
        "使用该注册码的申请正在完成中（证书 {serial}），请稍后重试。",
    ),
    "est.client_certificate_required": Message(
        401,
        "Re-enrolment needs the current certificate as TLS client certificate.",
        "重新注册需要以当前证书作为 TLS 客户端证书。",
    ),
    # the holder's tool
    "client.not_connected": Message(
        400,
        "No server is configured for this tool; run `certdesk connect URL` first.",
        "尚未配置服务器，请先运行 `certdesk connect URL`。",
    ),
    "client.untrusted": Message(
        400,
        "The root certificate was not trusted; nothing was changed.",
        "未信任根证书，未做任何更改。",
    ),
    "client.fingerprint_mismatch": Message(
        400,
        "The server's root CA has fingerprint {got}, not the expected {expected}; refusing to continue.",
        "服务器根证书指纹为 {got}，与预期的 {expected} 不符，已停止。",
    ),
    "client.not_https": Message(
        400,
        "certdesk connects over HTTPS only, and {url} is not an https:// address. Use {suggestion} (the server's HTTPS port).",
        "certdesk 仅通过 HTTPS 连接，{url} 不是 https:// 地址。请使用 {suggestion}（服务器的 HTTPS 端口）。",
    ),
    "client.connect_failed": Message(
        503,
        "The certdesk server at {url} is unreachable: {detail}. Check the address and port, and that the server is running.",
        "无法连接 certdesk 服务器 {url}：{detail}。请检查地址和端口，并确认服务器正在运行。",
    ),
    "client.server_unreachable": Message(
        503,
        "Cannot reach {url}: {detail}. Nothing is lost: once the server is reachable, press Get certificate on the portal or run `certdesk renew --pickup`.",
        "无法连接 {url}：{detail}。数据未丢失：服务器恢复后请在门户点击“获取证书”，或运行 `certdesk renew --pickup`。",
    ),
    "client.server_error": Message(
        502,
        "The server answered {status}: {detail}",
        "服务器返回 {status}：{detail}",
    ),
    # the browser's native helper (certdesk-helper)
    "helper.origin_refused": Message(
        403,
        "This helper serves {pinned} only; {origin} may not use it. Nothing on the token was changed.",
        "此助手仅服务于 {pinned}，{origin} 无权使用。USB Key 未做任何更改。",
    ),
    "helper.bad_message": Message(
        400,
        "The helper could not read the request: {detail}",
        "助手无法读取该请求：{detail}",
    ),
    "helper.busy": Message(
        409,
        "The helper is already working on another request; wait for it to finish.",
        "助手正在处理另一请求，请等待其完成。",
    ),
    "helper.failed": Message(
        500,
        "The helper failed: {detail}",
        "助手出错：{detail}",
    ),
    "helper.pin_cancelled": Message(
        400,
        "The PIN dialog was cancelled; nothing was changed.",
        "已取消 PIN 码输入，未做任何更改。",
    ),
    "helper.pinentry_failed": Message(
        500,
        "The PIN dialog ({program}) could not be shown: {detail}",
        "无法显示 PIN 码输入窗口（{program}）：{detail}",
    ),
    "helper.pin_mismatch": Message(
        400,
        "The two new PINs differ; the PIN of token {token} was not changed.",
        "两次输入的新 PIN 码不一致，USB Key {token} 的 PIN 码未修改。",
    ),
    "token.not_present": Message(
        404,
        "No token is present (PKCS#11 module {module}); insert your USB key. {hint}",
        "未检测到 USB Key（PKCS#11 模块 {module}），请插入 USB Key。{hint_zh}",
    ),
    "token.no_certificate": Message(
        404,
        "Token {label} holds no certificate; ask the registration office to enrol you.",
        "USB Key {label} 中没有证书，请联系证书受理点办理。",
    ),
    # portal login (the certificate is the only credential) and authorisation
    "login.no_certificate": Message(
        401,
        "No certificate was presented. Insert your USB key, check that its driver is installed, reload the page and choose your certificate when the browser asks.",
        "未收到证书。请插入 USB Key，确认驱动已安装，然后刷新页面，并在浏览器提示时选择您的证书。",
    ),
    "login.not_ours": Message(
        401,
        "This certificate was not issued by this platform's CA. Choose the certificate from your certdesk USB key; if it still fails, contact the office: {contacts}.",
        "该证书不是本平台 CA 签发的。请选择您 USB Key 中的证书；如仍无法登录，请联系证书受理点：{contacts}。",
    ),
    "login.not_yet_valid": Message(
        401,
        "Certificate {serial} is not valid yet; check your computer's date and time.",
        "证书 {serial} 尚未生效，请检查电脑的日期和时间。",
    ),
    "login.expired": Message(
        401,
        "Your certificate expired on {not_after}. It can no longer be renewed: ask your unit's technical contact ({unit_contact}) or the registration office ({contacts}) to re-enrol you.",
        "您的证书已于 {not_after} 过期，无法再自助更新。请联系本单位技术联系人（{unit_contact}）或证书受理点（{contacts}）重新办理。",
    ),
    "login.revoked": Message(
        401,
        "Your certificate {serial} was revoked on {revoked_at} (reason: {reason}). Contact the registration office: {contacts}.",
        "您的证书 {serial} 已于 {revoked_at} 被吊销（原因：{reason}）。请联系证书受理点：{contacts}。",
    ),
    "login.superseded": Message(
        401,
        "Your browser sent your old certificate {serial}, which was replaced by {by} when you renewed. Remove the old certificate from the browser's certificate store, restart the browser and choose the new one.",
        "浏览器发送的是您的旧证书 {serial}，更新后已由新证书 {by} 取代。请从浏览器的证书存储中删除旧证书，重启浏览器后选择新证书。",
    ),
    "login.not_installed": Message(
        401,
        "Certificate {serial} was issued but its installation was never confirmed; run `certdesk renew --pickup` to finish the renewal.",
        "证书 {serial} 已签发但尚未确认安装，请运行 `certdesk renew --pickup` 完成更新。",
    ),
    "login.departed": Message(
        403,
        "The account of {name} is closed (departed). If this is wrong, contact the office: {contacts}.",
        "{name} 的账户已注销（已离职）。如有误，请联系证书受理点：{contacts}。",
    ),
    "position.in_use": Message(
        409,
        "Position {code!r} is held by {people}; give them another position first. Nothing was changed.",
        "岗位 {code!r} 仍由 {people} 担任，请先为其调整岗位。未作任何更改。",
    ),
    "position.last_holder": Message(
        409,
        "After this change nobody active would hold {permission} (held now by {people}); nothing was changed.",
        "此项更改后将没有在岗人员拥有 {permission} 权限（目前拥有者：{people}），未作任何更改。",
    ),
    # the office's requests
    "request.not_found": Message(
        404, "Unknown request {request_id!r}.", "申请 {request_id!r} 不存在。"
    ),
    "request.bad_kind": Message(
        400,
        "Unknown kind of request {kind!r}; use one of: {allowed}.",
        "申请类型 {kind!r} 无效，可用的类型：{allowed}。",
    ),
    "request.missing_detail": Message(
        400,
        "A {kind} request needs: {detail}.",
        "{kind} 类申请需要填写：{detail}。",
    ),
    "request.not_submitted": Message(
        409,
        "Request {request_id} is {state}; only a submitted request can be decided or withdrawn. Nothing was changed.",
        "申请 {request_id} 当前状态为 {state}，只有已提交的申请才能审批或撤回。未作任何更改。",
    ),
    "request.own": Message(
        403,
        "You filed request {request_id} yourself; another RA officer must decide it (two-person rule). Nothing was changed.",
        "申请 {request_id} 是您本人提交的，须由另一位受理员审批（双人复核）。未作任何更改。",
    ),
    "request.reason_missing": Message(
        400,
        "Give a reason for rejecting request {request_id}.",
        "驳回申请 {request_id} 须填写理由。",
    ),
    "request.not_filer": Message(
        409,
        "Only the person who filed request {request_id} can withdraw it.",
        "只有申请 {request_id} 的提交人才能撤回该申请。",
    ),
    "request.no_attachment": Message(
        404,
        "Request {request_id} has no attachment.",
        "申请 {request_id} 没有附件。",
    ),
    "token.not_kept_by": Message(
        409,
        "Token {serial!r} is not recorded as kept by {person_id!r}; nothing was changed.",
        "USB Key {serial!r} 未登记为 {person_id!r} 保管，未作任何更改。",
    ),
    "request.state_changed": Message(
        409,
        "Request {key} was decided by someone else while this was handled; nothing was changed.",
        "处理期间申请 {key} 已被他人处理，未作任何更改。",
    ),
    "access.denied": Message(
        403,
        "Your position does not allow this ({permission}). To change your position, hand in the position-change form to the office.",
        "您的岗位无此权限（{permission}）。如需调整岗位，请向受理点提交岗位变更申请表。",
    ),
    "access.other_unit": Message(
        403,
        "You may see your own unit only, not {unit}.",
        "您只能查看本单位的数据，不能查看 {unit}。",
    ),
    "access.csrf": Message(
        403,
        "The form's security token is missing or wrong; reload the page and try again.",
        "表单安全令牌缺失或错误，请刷新页面后重试。",
    ),
    # officer console and REST API
    "person.already_departed": Message(
        409,
        "{person_id!r} is already recorded as departed.",
        "人员 {person_id!r} 已登记为离职。",
    ),
    "token.already_lost": Message(
        409,
        "Token {serial!r} is already reported lost.",
        "USB Key {serial!r} 已登记为遗失。",
    ),
    "cert.ca_certificate": Message(
        409,
        "Certificate {serial} belongs to a CA ({profile}); a CA's own certificate is not revoked by a request (not from the console, the API or the command line).",
        "证书 {serial} 是 CA 证书（{profile}），不能通过吊销请求吊销（管理台、接口和命令行均不可）。",
    ),
    "form.too_large": Message(
        413,
        "The upload is too large: forms may be at most {limit} KiB. Nothing was stored.",
        "上传的文件过大：表格最大为 {limit} KiB。未保存任何内容。",
    ),
    "form.wrong_type": Message(
        415,
        "{name!r} is not accepted: {detail}. Accepted: {allowed}. Nothing was stored.",
        "不接受文件 {name!r}：{detail}。可接受的类型：{allowed}。未保存任何内容。",
    ),
    "form.not_found": Message(404, "No form named {name!r}.", "没有名为 {name!r} 的表格。"),
    # the command line
    "cli.confirmation_needed": Message(
        400,
        "{action}: this needs a confirmation and there is no terminal to ask. Nothing was changed; add {option} to confirm in a script.",
        "{action}：此操作需要确认，但当前没有可交互的终端。未作任何更改；在脚本中请加 {option} 确认。",
    ),
    "cli.entries_differ": Message(
        400,
        "The two entries differed {tries} times; nothing was changed.",
        "两次输入连续 {tries} 次不一致，未作任何更改。",
    ),
    "cli.cancelled": Message(
        400,
        "Cancelled; nothing was changed.",
        "已取消，未作任何更改。",
    ),
    # config
    "config.invalid": Message(400, "Configuration error: {detail}", "配置错误：{detail}"),
    # serve
    "server.port_in_use": Message(
        409,
        "Port {port} on {host} is already in use (another `certdesk serve`, or another program); nothing was started or changed. Stop it, or choose another port: server.port in certdesk.toml, CERTDESK_SERVER_PORT or `serve --port`.",
        "{host} 上的端口 {port} 已被占用（另一个 `certdesk serve` 或其他程序），未启动或更改任何内容。请先停止它，或换一个端口：certdesk.toml 中的 server.port、CERTDESK_SERVER_PORT 或 `serve --port`。",
    ),
    "server.workers_need_postgres": Message(
        409,
        "{workers} server processes need PostgreSQL (database.url): the embedded SQLite database is served by one process. Use --workers 1, or move to PostgreSQL (docs/deployment.md, Scaled out).",
        "{workers} 个服务进程需要 PostgreSQL（database.url）：内置的 SQLite 数据库只能由一个进程提供服务。请使用 --workers 1，或改用 PostgreSQL（见 docs/deployment.md「横向扩展」）。",
    ),
    "server.cannot_listen": Message(
        400,
        "Cannot listen on {host} port {port}: {detail}; nothing was started or changed.",
        "无法在 {host} 的端口 {port} 上监听：{detail}；未启动或更改任何内容。",
    ),
}


class _Lenient(string.Formatter):
    def get_value(self, key: int | str, args: Any, kwargs: Any) -> Any:
        if isinstance(key, str):
            return kwargs.get(key, "?")
        return super().get_value(key, args, kwargs)


_FORMATTER = _Lenient()


# RFC 5280 reasons in a zh-CN message: the Chinese name, the standard name after it (what the
# officer and the CLI use). English messages keep the standard name alone.
REASONS_ZH = {
    "unspecified": "未指定",
    "keyCompromise": "密钥泄露",
    "cACompromise": "CA 密钥泄露",
    "affiliationChanged": "隶属关系变更",
    "superseded": "已被取代",
    "cessationOfOperation": "停止使用",
    "certificateHold": "证书冻结",
    "removeFromCRL": "从 CRL 中移除",
    "privilegeWithdrawn": "权限撤销",
    "aACompromise": "属性机构密钥泄露",
}


def render(code: str, locale: Locale, params: dict[str, Any]) -> str:
    msg = CATALOG[code]
    template = msg.zh if locale == "zh-CN" else msg.en
    if locale == "zh-CN" and params.get("reason") in REASONS_ZH:
        params = {**params, "reason": f"{REASONS_ZH[params['reason']]}（{params['reason']}）"}
    return _FORMATTER.format(template, **params)
