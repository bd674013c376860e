"""The local deployment bundle: NATS identities, server config and runtime config.

``init_bundle`` generates, in pure Python (no ``nsc``), everything a local Trellis
deployment needs (PROTOCOL §5):

- an operator and the ``SYS``, ``AUTH`` and ``TRELLIS`` accounts (``AUTH`` and ``TRELLIS``
  with signing keys; ``SYS`` without JetStream limits, or nats-server refuses to start);
- the ``AUTH`` account's auth-callout block (``auth_users`` = the callout user,
  ``allowed_accounts`` = ``TRELLIS``, ``xkey`` = a generated curve key);
- creds for the callout user (AUTH, bypasses the callout), the sentinel user (AUTH,
  deny-all, always triggers the callout), the runtime (TRELLIS, direct login) and SYS;
- ``nats.conf`` (operator mode, ``resolver: MEMORY`` + ``resolver_preload``, JetStream
  inside the bundle, monitoring, and a websocket listener without TLS for browser apps);
- ``runtime.json``: the :class:`RuntimeConfig` pointing at all of the above.

Every secret (seeds, creds) is created with mode 0600. Running ``init_bundle`` again on
a finished bundle loads it and changes nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from trellis.auth import SessionKey
from trellis.files import write_secret_file
from trellis.nats.creds import write_creds
from trellis.nats.jwt import (
    AuthCalloutConfig,
    UserPermissions,
    encode_account_jwt,
    encode_operator_jwt,
    encode_user_jwt,
)
from trellis.nats.nkey import KeyRole, NKeyPair
from trellis.nats.server import DEFAULT_HOST, NatsServer, free_ports
from trellis.nats.xkey import XKeyPair

__all__ = [
    "BUNDLE_FORMAT",
    "RUNTIME_CONFIG_FILE",
    "AccountInfo",
    "AuthCalloutSettings",
    "Bundle",
    "BundleError",
    "ConnectionLimits",
    "CredsFiles",
    "HttpEndpoint",
    "NatsEndpoints",
    "RuntimeConfig",
    "init_bundle",
    "render_nats_config",
]

BUNDLE_FORMAT: Final = "trellis.runtime.bundle.v1"
RUNTIME_CONFIG_FILE: Final = "runtime.json"
AUTH_CALLOUT_SUBJECT: Final = "$SYS.REQ.USER.AUTH"


class BundleError(RuntimeError):
    """The bundle directory is unusable (incomplete, foreign, or mismatched)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AccountInfo(_Model):
    """An account's identity. File paths are relative to the bundle directory."""

    name: str
    public_key: str
    seed_file: str
    signing_public_key: str | None = None
    signing_seed_file: str | None = None


class AuthCalloutSettings(_Model):
    """What the runtime's callout responder needs (upstream ``nats.authCallout``)."""

    subject: str = AUTH_CALLOUT_SUBJECT
    queue: str = "trellis"
    #: the AUTH account: signs authorization responses (``issuer_account`` of the response)
    issuer_account: str
    issuer_signing_seed_file: str
    #: the TRELLIS account: signs the minted user JWTs (``issuer_account`` of the user)
    target_account: str
    target_signing_seed_file: str
    xkey_public_key: str
    xkey_seed_file: str


class CredsFiles(_Model):
    callout: str
    sentinel: str
    runtime: str
    system: str


class NatsEndpoints(_Model):
    """Where the bundle's nats-server listens, and the URLs clients should use."""

    host: str
    client_port: int
    monitor_port: int
    websocket_port: int
    #: native clients (services, CLIs, the runtime)
    servers: list[str]
    #: browser apps (websocket, no TLS: local development only)
    websocket_servers: list[str]
    monitor_url: str

    @classmethod
    def local(
        cls, host: str, client_port: int, monitor_port: int, websocket_port: int
    ) -> NatsEndpoints:
        return cls(
            host=host,
            client_port=client_port,
            monitor_port=monitor_port,
            websocket_port=websocket_port,
            servers=[f"nats://{host}:{client_port}"],
            websocket_servers=[f"ws://{host}:{websocket_port}"],
            monitor_url=f"http://{host}:{monitor_port}",
        )


class HttpEndpoint(_Model):
    """The runtime's HTTP listener (service bootstrap, health)."""

    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class ConnectionLimits(_Model):
    """What one connection of the deployment may do; NATS enforces both."""

    #: bytes per message, headers included (nats-server's own default is 1 MiB)
    max_payload: int = Field(default=1024 * 1024, ge=1024)
    #: subscriptions per connection
    max_subscriptions: int = Field(default=10_000, ge=16)


class RuntimeConfig(_Model):
    """Contents of ``runtime.json``: public keys and bundle-relative paths, no secrets."""

    format: Literal["trellis.runtime.bundle.v1"] = BUNDLE_FORMAT
    operator_public_key: str
    operator_seed_file: str
    operator_jwt_file: str
    system: AccountInfo
    auth: AccountInfo
    trellis: AccountInfo
    auth_callout: AuthCalloutSettings
    creds: CredsFiles
    nats: NatsEndpoints
    nats_config_file: str
    jetstream_dir: str
    log_file: str
    #: nats-server rotates its log past this size and keeps this many files: anyone can
    #: make it write (a line per refused connect), so its disk use is bounded (the count
    #: includes the live file)
    log_max_bytes: int = 10_000_000
    log_max_files: int = 5
    http: HttpEndpoint
    #: the local operator's CLI session key (a ``trellis.cli@v1`` participant holding ``admin``)
    admin_seed_file: str
    admin_public_key: str
    #: per-connection limits of every participant (the TRELLIS account JWT carries them:
    #: nats-server ignores the limits of user JWTs issued through the auth callout, so
    #: only account limits bound a callout user); a larger publish closes the publisher's
    #: connection, a subscription beyond the count is refused
    limits: ConnectionLimits = Field(default_factory=ConnectionLimits)
    #: KV/stream replicas for control-plane state (1 locally, 3 on a cluster)
    replicas: int = 1


class Bundle(BaseModel):
    """A loaded bundle: its directory plus :class:`RuntimeConfig`, with path helpers."""

    model_config = ConfigDict(frozen=True)

    directory: Path
    config: RuntimeConfig

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Bundle:
        root = Path(directory).absolute()
        path = root / RUNTIME_CONFIG_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise BundleError(
                f"no Trellis bundle at {root} ({RUNTIME_CONFIG_FILE} missing)"
            ) from None
        try:
            config = RuntimeConfig.model_validate_json(text)
        except ValueError as exc:
            raise BundleError(f"{path} is not a valid runtime config: {exc}") from None
        return cls(directory=root, config=config)

    def path(self, relative: str) -> Path:
        return self.directory / relative

    # ---------------------------------------------------------------- convenient paths

    @property
    def runtime_config_path(self) -> Path:
        return self.directory / RUNTIME_CONFIG_FILE

    @property
    def nats_config_path(self) -> Path:
        return self.path(self.config.nats_config_file)

    @property
    def callout_creds(self) -> Path:
        return self.path(self.config.creds.callout)

    @property
    def sentinel_creds(self) -> Path:
        return self.path(self.config.creds.sentinel)

    @property
    def runtime_creds(self) -> Path:
        return self.path(self.config.creds.runtime)

    @property
    def system_creds(self) -> Path:
        return self.path(self.config.creds.system)

    @property
    def nats_url(self) -> str:
        return self.config.nats.servers[0]

    @property
    def websocket_url(self) -> str:
        return self.config.nats.websocket_servers[0]

    # ---------------------------------------------------------------- secrets

    def auth_signing_key(self) -> NKeyPair:
        """The AUTH signing key: signs authorization responses."""
        return NKeyPair.from_seed_file(self.path(self.config.auth_callout.issuer_signing_seed_file))

    def trellis_signing_key(self) -> NKeyPair:
        """The TRELLIS signing key: signs user JWTs minted by the callout."""
        return NKeyPair.from_seed_file(self.path(self.config.auth_callout.target_signing_seed_file))

    def callout_xkey(self) -> XKeyPair:
        return XKeyPair.from_seed_file(self.path(self.config.auth_callout.xkey_seed_file))

    # ---------------------------------------------------------------- server

    def admin_key(self) -> SessionKey:
        return SessionKey.load(self.path(self.config.admin_seed_file))

    def nats_server(self) -> NatsServer:
        """A (not yet started) :class:`NatsServer` for this bundle's ``nats.conf``."""
        nats = self.config.nats
        return NatsServer(
            self.nats_config_path,
            host=nats.host,
            client_port=nats.client_port,
            monitor_port=nats.monitor_port,
            extra_ports=(nats.websocket_port,),
            log_file=self.path(self.config.log_file),
        )


# ------------------------------------------------------------------------ generation

_KEYS = "keys"
_CREDS = "creds"
_JWT = "jwt"


def init_bundle(
    directory: str | os.PathLike[str],
    *,
    client_port: int | None = None,
    monitor_port: int | None = None,
    websocket_port: int | None = None,
    http_port: int | None = None,
    host: str = DEFAULT_HOST,
    operator_name: str = "trellis",
    limits: ConnectionLimits | None = None,
) -> Bundle:
    """Create a bundle in ``directory`` (or load the one already there).

    Ports left ``None`` are picked free on ``host`` at creation time. When a bundle exists,
    it is loaded unchanged; a port given explicitly that differs from the bundle's raises
    :class:`BundleError` rather than silently being ignored.
    """
    root = Path(directory).absolute()
    if (root / RUNTIME_CONFIG_FILE).exists():
        bundle = Bundle.load(root)
        config = bundle.config
        for label, given, actual in (
            ("client_port", client_port, config.nats.client_port),
            ("monitor_port", monitor_port, config.nats.monitor_port),
            ("websocket_port", websocket_port, config.nats.websocket_port),
            ("http_port", http_port, config.http.port),
        ):
            if given is not None and given != actual:
                raise BundleError(f"existing bundle uses {label}={actual}, not {given}")
        return bundle
    if root.exists() and any(root.iterdir()):
        raise BundleError(
            f"{root} is not empty but holds no {RUNTIME_CONFIG_FILE}; "
            "refusing to generate a bundle there (remove it or pick another directory)"
        )
    wanted = [client_port, monitor_port, websocket_port, http_port]
    picked = iter(free_ports(sum(p is None for p in wanted), host))
    client, monitor, websocket, http = (p if p is not None else next(picked) for p in wanted)
    endpoints = NatsEndpoints.local(host, client, monitor, websocket)
    return _generate(
        root,
        endpoints,
        operator_name,
        HttpEndpoint(host=host, port=http),
        limits or ConnectionLimits(),
    )


def _mkdir_private(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def _write_public(path: Path, text: str) -> None:
    """Write a non-secret file atomically (temporary file + rename)."""
    write_secret_file(path, text, overwrite=True, mode=0o644)


def _save_seed(root: Path, name: str, seed: str) -> str:
    relative = f"{_KEYS}/{name}"
    write_secret_file(root / relative, seed + "\n")
    return relative


def _generate(
    root: Path,
    nats: NatsEndpoints,
    operator_name: str,
    http: HttpEndpoint,
    limits: ConnectionLimits,
) -> Bundle:
    _mkdir_private(root)
    for sub in (_KEYS, _CREDS, _JWT, "jetstream"):
        _mkdir_private(root / sub)

    operator = NKeyPair.generate(KeyRole.OPERATOR)
    sys_account = NKeyPair.generate(KeyRole.ACCOUNT)
    auth_account = NKeyPair.generate(KeyRole.ACCOUNT)
    auth_signing = NKeyPair.generate(KeyRole.ACCOUNT)
    trellis_account = NKeyPair.generate(KeyRole.ACCOUNT)
    trellis_signing = NKeyPair.generate(KeyRole.ACCOUNT)
    xkey = XKeyPair.generate()
    callout_user = NKeyPair.generate(KeyRole.USER)
    sentinel_user = NKeyPair.generate(KeyRole.USER)
    runtime_user = NKeyPair.generate(KeyRole.USER)
    system_user = NKeyPair.generate(KeyRole.USER)

    operator_jwt = encode_operator_jwt(
        operator, name=operator_name, system_account=sys_account.public_key
    )
    account_jwts = {
        sys_account.public_key: encode_account_jwt(
            operator, sys_account.public_key, name="SYS", jetstream=False
        ),
        auth_account.public_key: encode_account_jwt(
            operator,
            auth_account.public_key,
            name="AUTH",
            signing_keys=[auth_signing.public_key],
            authorization=AuthCalloutConfig(
                auth_users=(callout_user.public_key,),
                allowed_accounts=(trellis_account.public_key,),
                xkey=xkey.public_key,
            ),
        ),
        trellis_account.public_key: encode_account_jwt(
            operator,
            trellis_account.public_key,
            name="TRELLIS",
            signing_keys=[trellis_signing.public_key],
            max_payload=limits.max_payload,
            max_subscriptions=limits.max_subscriptions,
        ),
    }

    seeds = {
        "operator": _save_seed(root, "operator.nk", operator.seed),
        "sys": _save_seed(root, "sys-account.nk", sys_account.seed),
        "auth": _save_seed(root, "auth-account.nk", auth_account.seed),
        "auth-signing": _save_seed(root, "auth-signing.nk", auth_signing.seed),
        "trellis": _save_seed(root, "trellis-account.nk", trellis_account.seed),
        "trellis-signing": _save_seed(root, "trellis-signing.nk", trellis_signing.seed),
        "xkey": _save_seed(root, "auth-callout.xk", xkey.seed),
    }
    admin = SessionKey.generate()
    admin.save(root / f"{_KEYS}/admin.seed")

    creds = CredsFiles(
        callout=f"{_CREDS}/auth-callout.creds",
        sentinel=f"{_CREDS}/sentinel.creds",
        runtime=f"{_CREDS}/trellis-runtime.creds",
        system=f"{_CREDS}/system.creds",
    )
    for relative, signer, user, name, perms in (
        (creds.callout, auth_account, callout_user, "auth-callout", UserPermissions.allow_all()),
        (creds.sentinel, auth_account, sentinel_user, "sentinel", UserPermissions.deny_all()),
        (
            creds.runtime,
            trellis_account,
            runtime_user,
            "trellis-runtime",
            UserPermissions.allow_all(),
        ),
        (creds.system, sys_account, system_user, "system", UserPermissions.allow_all()),
    ):
        user_jwt = encode_user_jwt(signer, user.public_key, name=name, permissions=perms)
        write_creds(root / relative, user_jwt, user.seed)

    operator_jwt_file = f"{_JWT}/operator.jwt"
    _write_public(root / operator_jwt_file, operator_jwt + "\n")
    for name, account in (
        ("SYS", sys_account),
        ("AUTH", auth_account),
        ("TRELLIS", trellis_account),
    ):
        _write_public(root / _JWT / f"{name}.jwt", account_jwts[account.public_key] + "\n")

    config = RuntimeConfig(
        operator_public_key=operator.public_key,
        operator_seed_file=seeds["operator"],
        operator_jwt_file=operator_jwt_file,
        system=AccountInfo(name="SYS", public_key=sys_account.public_key, seed_file=seeds["sys"]),
        auth=AccountInfo(
            name="AUTH",
            public_key=auth_account.public_key,
            seed_file=seeds["auth"],
            signing_public_key=auth_signing.public_key,
            signing_seed_file=seeds["auth-signing"],
        ),
        trellis=AccountInfo(
            name="TRELLIS",
            public_key=trellis_account.public_key,
            seed_file=seeds["trellis"],
            signing_public_key=trellis_signing.public_key,
            signing_seed_file=seeds["trellis-signing"],
        ),
        auth_callout=AuthCalloutSettings(
            issuer_account=auth_account.public_key,
            issuer_signing_seed_file=seeds["auth-signing"],
            target_account=trellis_account.public_key,
            target_signing_seed_file=seeds["trellis-signing"],
            xkey_public_key=xkey.public_key,
            xkey_seed_file=seeds["xkey"],
        ),
        creds=creds,
        nats=nats,
        nats_config_file="nats.conf",
        limits=limits,
        jetstream_dir="jetstream",
        log_file="nats-server.log",
        http=http,
        admin_seed_file="keys/admin.seed",
        admin_public_key=admin.public_key,
    )
    conf = render_nats_config(
        root,
        config,
        account_jwts,
        server_name=f"trellis-{operator.public_key[-8:].lower()}",
    )
    _write_public(root / config.nats_config_file, conf)
    # runtime.json last: its presence marks a complete bundle.
    _write_public(root / RUNTIME_CONFIG_FILE, config.model_dump_json(indent=2) + "\n")
    return Bundle(directory=root, config=config)


def _q(value: str) -> str:
    """A nats.conf string literal (JSON string syntax is accepted by the parser)."""
    return json.dumps(value)


def render_nats_config(
    root: Path,
    config: RuntimeConfig,
    account_jwts: dict[str, str],
    *,
    server_name: str,
) -> str:
    """The nats-server config text for a bundle (absolute paths into ``root``)."""
    nats = config.nats
    preload = "\n".join(f"  {key}: {_q(token)}" for key, token in account_jwts.items())
    return (
        "# Generated by trellis (runtime bundle). Regenerate rather than edit.\n"
        f"server_name: {_q(server_name)}\n"
        f"host: {_q(nats.host)}\n"
        f"port: {nats.client_port}\n"
        f"http: {_q(f'{nats.host}:{nats.monitor_port}')}\n"
        f"log_file: {_q(str(root / config.log_file))}\n"
        f"logfile_size_limit: {config.log_max_bytes}\n"
        f"logfile_max_num: {config.log_max_files}\n"
        "\n"
        f"operator: {_q(str(root / config.operator_jwt_file))}\n"
        f"system_account: {config.system.public_key}\n"
        "resolver: MEMORY\n"
        "resolver_preload: {\n"
        f"{preload}\n"
        "}\n"
        "\n"
        "jetstream: {\n"
        f"  store_dir: {_q(str(root / config.jetstream_dir))}\n"
        "}\n"
        "\n"
        "websocket: {\n"
        f"  host: {_q(nats.host)}\n"
        f"  port: {nats.websocket_port}\n"
        "  no_tls: true\n"
        "  same_origin: false\n"
        "}\n"
    )
