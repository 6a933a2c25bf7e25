"""Loading a configuration: YAML text to a checked `GatewayConfig`, with every problem placed.

Everything that can be checked before a process is spawned is checked here, and every problem
is reported at once with its YAML path and line, so ``watchgate validate`` can show a person all
they need to fix in one run. Plugin sections are checked by the plugin registry, which is why
loading sits above the plugins while the structs (``schema``) sit below them.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import msgspec

from watchgate.config.schema import (
    ENV_VAR,
    NAME_RULE,
    URL_SCHEMES,
    AccessRule,
    AuthConfig,
    GatewayConfig,
    HttpListenerConfig,
    PluginConfig,
    ProfileConfig,
    ProxyConfig,
    SandboxConfig,
    Transport,
    UpstreamConfig,
    parse_size,
)
from watchgate.config.yamlsource import (
    Issue,
    YamlDocument,
    convert,
    join_path,
    load_yaml,
    show,
    unknown_key_message,
)
from watchgate.errors import ConfigError, ConfigProblem, YamlSyntaxError
from watchgate.plugins.registry import check_entries
from watchgate.protocol.namespace import SERVER_NAME_RE
from watchgate.protocol.urls import shown_url

__all__ = ["load_config", "parse_config"]


def load_config(path: str | os.PathLike[str]) -> GatewayConfig:
    """Read and check a configuration file; relative paths in it are relative to its folder."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as file:
            text = file.read()
    except FileNotFoundError:
        raise ConfigError([ConfigProblem("", None, "file not found")], source) from None
    except UnicodeDecodeError as exc:
        message = f"not UTF-8 text ({exc.reason} at byte {exc.start})"
        raise ConfigError([ConfigProblem("", None, message)], source) from None
    except OSError as exc:
        message = f"cannot read the file: {exc.strerror or exc}"
        raise ConfigError([ConfigProblem("", None, message)], source) from None
    base_dir = os.path.dirname(os.path.abspath(source))
    return parse_config(text, source=source, base_dir=base_dir)


def parse_config(
    text: str,
    *,
    source: str | None = None,
    base_dir: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> GatewayConfig:
    """Check YAML text; ``base_dir`` (default: the current directory) anchors relative paths;
    ``${VAR}`` comes from ``environ`` (default: this process's environment)."""
    try:
        document = load_yaml(text)
    except YamlSyntaxError as exc:
        problem = ConfigProblem("", exc.line, f"YAML syntax error: {exc.message}")
        raise ConfigError([problem], source) from None
    builder = _Builder(
        document, os.path.abspath(base_dir or os.getcwd()), os.environ if environ is None else environ
    )
    config = builder.build(source)
    if config is None:
        problems = sorted(builder.problems, key=lambda p: p.line or 0)
        raise ConfigError(problems, source)
    return config


class _Builder:
    """Collects problems while turning one loaded document into a :class:`GatewayConfig`."""

    def __init__(self, document: YamlDocument, base_dir: str, environ: Mapping[str, str]) -> None:
        self.document = document
        self.base_dir = base_dir
        self.environ = environ
        self.problems: list[ConfigProblem] = []
        self.upstream_plugins: list[tuple[str, tuple[PluginConfig, ...]]] = []

    def add(self, path: str, message: str, line: int | None = None) -> None:
        if line is None:
            line = self.document.line_for(path)
        self.problems.append(ConfigProblem(path, line, message))

    def take(self, issues: Iterable[Issue]) -> None:
        for issue in issues:
            self.add(issue.path, issue.message, issue.line)

    def build(self, source: str | None) -> GatewayConfig | None:
        data = self.document.data
        if data is None:
            message = "the configuration is empty (it needs at least a 'proxy' section)"
            self.problems.append(ConfigProblem("", None, message))
            return None
        if not isinstance(data, dict):
            self.add("", f"expected a mapping of sections such as 'proxy', got {show(data)}")
            return None
        self.take(self.document.issues)
        fields = {f.encode_name: f for f in msgspec.structs.fields(GatewayConfig) if f.name != "source"}
        for key in data:
            if key not in fields:
                self.add(join_path("", str(key)), unknown_key_message(key, list(fields)))
        sections: dict[str, Any] = {}
        for name, field in fields.items():
            if name not in data:
                if field.required:
                    self.add(name, f"missing required section {name!r}")
            elif name == "proxy":
                sections[name] = self.proxy(data[name])
            else:
                converted = convert(data[name], field.type, path=name)
                self.take(converted.issues)
                sections[name] = converted.value
        self.check_plugins(sections.get("plugins") or ())
        self.check_profiles(sections.get("profiles") or {}, sections.get("proxy"))
        self.check_access(sections.get("access"), sections.get("profiles") or {}, sections.get("proxy"))
        if self.problems:
            return None
        return GatewayConfig(**sections, source=source)

    def check_profiles(self, profiles: dict[str, ProfileConfig], proxy: ProxyConfig | None) -> None:
        """A profile's name is a plain word (a flag and a URL query carry it); its servers exist."""
        known = [u.name for u in proxy.upstreams] if proxy is not None else []
        for name, profile in profiles.items():
            path = join_path("profiles", name)
            if not SERVER_NAME_RE.match(name):
                self.add(path, f"profile name {name!r}: letters, digits and '-', starting with a letter")
            for server in profile.servers or ():
                if proxy is not None and server not in known:
                    message = f"no upstream is called {server!r} (known: {', '.join(known)})"
                    self.add(join_path(path, "servers"), message)

    def check_access(
        self,
        rules: tuple[AccessRule, ...] | None,
        profiles: dict[str, ProfileConfig],
        proxy: ProxyConfig | None,
    ) -> None:
        """An access rule names profiles and servers that exist."""
        known = [u.name for u in proxy.upstreams] if proxy is not None else []
        for i, rule in enumerate(rules or ()):
            path = f"access[{i}]"
            if rule.profile is not None and rule.profile not in profiles:
                names = ", ".join(profiles) or "none"
                self.add(
                    join_path(path, "profile"), f"no profile is called {rule.profile!r} (known: {names})"
                )
            for server in rule.servers or ():
                if proxy is not None and server not in known:
                    message = f"no upstream is called {server!r} (known: {', '.join(known)})"
                    self.add(join_path(path, "servers"), message)

    def check_plugins(self, global_plugins: tuple[PluginConfig, ...]) -> None:
        """Every plugin must load and its config convert, globally and as merged per server."""
        if not global_plugins and not any(entries for _, entries in self.upstream_plugins):
            return
        self.take(check_entries(global_plugins, "plugins"))
        for path, entries in self.upstream_plugins:
            self.take(check_entries(entries, join_path(path, "plugins"), base=global_plugins))

    def proxy(self, raw: Any) -> ProxyConfig | None:
        if not isinstance(raw, dict):
            self.add("proxy", f"expected a mapping, got {show(raw)}")
            return None
        items: list[tuple[str, Any]] = []
        if "upstream" in raw and "upstreams" in raw:
            self.add(
                "proxy.upstream",
                "give either 'upstream' (one server) or 'upstreams' (a list), not both",
            )
        if "upstreams" in raw:
            listed = raw["upstreams"]
            if not isinstance(listed, list):
                self.add("proxy.upstreams", f"expected a list of servers, got {show(listed)}")
            elif not listed:
                self.add("proxy.upstreams", "at least one upstream server is required")
            else:
                items = [(f"proxy.upstreams[{i}]", item) for i, item in enumerate(listed)]
        elif "upstream" in raw:
            items = [("proxy.upstream", raw["upstream"])]
        else:
            self.add("proxy", "no upstream servers: add 'upstreams:' (a list) or 'upstream:'")
        rest = {k: v for k, v in raw.items() if k not in ("upstream", "upstreams")}
        converted = convert({**rest, "upstreams": []}, ProxyConfig, path="proxy")
        self.take(converted.issues)
        self.check_names(items)
        upstreams = [self.upstream(path, item) for path, item in items]
        if converted.value is None:
            return None
        default = self.sandbox(converted.value.sandbox, "proxy.sandbox")
        return msgspec.structs.replace(
            converted.value,
            sandbox=default,
            http=self.listener(converted.value.http, "proxy.http"),
            upstreams=tuple(
                u
                if u.sandbox is not None or u.transport is not Transport.STDIO
                else msgspec.structs.replace(u, sandbox=default)
                for u in upstreams
                if u is not None
            ),
        )

    def sandbox(self, sandbox: SandboxConfig, path: str) -> SandboxConfig:
        """Folders as absolute paths (``~`` expanded, relative to the config file)."""

        def resolve(key: str, folders: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(
                self.resolve(self.expand(folder, join_path(path, f"{key}[{i}]"), tilde=True))
                for i, folder in enumerate(folders)
            )

        return msgspec.structs.replace(
            sandbox, paths=resolve("paths", sandbox.paths), read_only=resolve("read_only", sandbox.read_only)
        )

    def listener(self, http: HttpListenerConfig, path: str) -> HttpListenerConfig:
        """The token and certificate files as absolute paths (``~`` expanded, relative to the config)."""

        def file(value: str, key: str) -> str:
            return self.resolve(self.expand(value, join_path(path, key), tilde=True))

        tls = http.tls
        if tls is not None:
            tls = msgspec.structs.replace(tls, cert=file(tls.cert, "tls.cert"), key=file(tls.key, "tls.key"))
        token = None if http.token_file is None else file(http.token_file, "token_file")
        auth = http.auth
        if auth is not None:
            tokens = tuple(
                t
                if t.token_file is None
                else msgspec.structs.replace(t, token_file=file(t.token_file, f"auth.tokens[{i}].token_file"))
                for i, t in enumerate(auth.tokens)
            )
            auth = msgspec.structs.replace(auth, tokens=tokens)
        return msgspec.structs.replace(http, token_file=token, tls=tls, auth=auth)

    def check_names(self, items: list[tuple[str, Any]]) -> None:
        """Names become tool prefixes and URI schemes in multi-server mode (ADR-014)."""
        first: dict[str, str] = {}
        for path, raw in items:
            if not isinstance(raw, dict):
                continue
            name, name_path = raw.get("name"), join_path(path, "name")
            if "name" not in raw:
                if len(items) > 1:
                    message = "a name is required when there is more than one upstream"
                    self.add(name_path, message)
            elif not isinstance(name, str):
                continue  # convert() reports the type
            elif not SERVER_NAME_RE.match(name):
                self.add(name_path, f"{name!r} is not a valid server name ({NAME_RULE})")
            elif name in first:
                self.add(name_path, f"duplicate server name {name!r} (also used by {first[name]})")
            else:
                first[name] = path

    def upstream(self, path: str, raw: Any) -> UpstreamConfig | None:
        if not isinstance(raw, dict):
            self.add(path, f"expected a mapping describing one server, got {show(raw)}")
            return None
        data, skip = dict(raw), set()
        if isinstance(data.get("command"), str):
            try:
                data["command"] = shlex.split(data["command"])
            except ValueError as exc:
                self.add(join_path(path, "command"), f"cannot split the command string: {exc}")
                del data["command"]
                skip.add("command")
        if "args" in data:
            self.append_args(path, data, skip)
        converted = convert(data, UpstreamConfig, path=path)
        self.take(converted.issues)
        if converted.value is None:
            return None
        if "plugins" not in converted.set_aside:
            self.upstream_plugins.append((path, converted.value.plugins))
        checked = self.check_upstream(path, raw, converted.value, skip | converted.set_aside)
        return None if converted.issues or skip else checked

    def append_args(self, path: str, data: dict[Any, Any], skip: set[str]) -> None:
        """``args`` beside ``command``, the shape every MCP client's config uses: appended to it."""
        args, args_path = data.pop("args"), join_path(path, "args")
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            self.add(args_path, f"expected a list of strings, got {show(args)}")
            skip.add("args")
            return
        command = data.get("command")
        if not isinstance(command, list):
            return  # no command to append to: the command's own problem is reported
        data["command"] = [*command, *args]

    def check_upstream(
        self, path: str, raw: dict[Any, Any], u: UpstreamConfig, skip: set[str]
    ) -> UpstreamConfig | None:
        """Cross-field rules, then ``${VAR}``/``~`` expansion and relative-path resolution.

        Keys in ``skip`` were reported already and replaced by defaults for the sake of the
        other checks; rules that would judge those defaults are not applied.
        """
        before = len(self.problems)
        if "transport" not in skip:
            self.check_transport(path, raw, u, skip)
        backoff_ok = not skip & {"backoff", "backoff.initial", "backoff.max"}
        if backoff_ok and u.backoff.max < u.backoff.initial:
            message = f"must be at least backoff.initial ({u.backoff.initial:g})"
            self.add(join_path(path, "backoff.max"), message)

        listed = not isinstance(raw.get("command"), str)
        command_path = join_path(path, "command")
        command = [
            self.expand(arg, join_path(command_path, i) if listed else command_path, tilde=arg != "~")
            for i, arg in enumerate(u.command)
        ]
        if command and "/" in command[0]:
            command[0] = self.resolve(command[0])
        env_path, headers_path = join_path(path, "env"), join_path(path, "headers")
        # a word that is only "~" is a word, as an MCP client passes it (no shell expands it);
        # "~/…" is a path in the home folder
        env = {k: self.expand(v, join_path(env_path, k), tilde=v != "~") for k, v in u.env.items()}
        headers = {k: self.expand(v, join_path(headers_path, k)) for k, v in u.headers.items()}
        sandbox = u.sandbox and self.sandbox(u.sandbox, join_path(path, "sandbox"))
        env_files = tuple(
            self.resolve(self.expand(f, join_path(path, f"env_files[{i}]"), tilde=True))
            for i, f in enumerate(u.env_files)
        )
        if u.limits is not None and u.limits.memory is not None:
            try:
                parse_size(u.limits.memory)
            except ValueError as exc:
                self.add(join_path(path, "limits.memory"), str(exc))
        cwd = u.cwd and self.resolve(self.expand(u.cwd, join_path(path, "cwd"), tilde=True))
        if cwd is None and u.transport is Transport.STDIO:
            cwd = self.base_dir  # one rule for `up` and `run`: a server starts in the config's folder
        auth = u.auth and self.auth(u.auth, join_path(path, "auth"))
        tls = u.tls
        if tls.ca_file is not None:
            ca_path = join_path(path, "tls.ca_file")
            tls = msgspec.structs.replace(
                tls, ca_file=self.resolve(self.expand(tls.ca_file, ca_path, tilde=True))
            )
        url = u.url and self.expand(u.url, join_path(path, "url"))
        if url is not None and u.transport in URL_SCHEMES and "transport" not in skip:
            schemes = URL_SCHEMES[u.transport]
            parts = urlsplit(url)
            if parts.scheme.lower() not in schemes or not parts.netloc:
                wanted = " or ".join(f"{scheme}://" for scheme in schemes)
                shown = shown_url(url)
                message = f"must start with {wanted} when transport is {u.transport}, got {shown!r}"
                self.add(join_path(path, "url"), message)
            elif (parts.username or parts.password) and u.auth is not None:
                message = "has a user:password in it and auth is given too: keep one (auth: is the way)"
                self.add(join_path(path, "url"), message)
        if len(self.problems) > before:
            return None
        return msgspec.structs.replace(
            u,
            command=tuple(command),
            env=env,
            env_files=env_files,
            headers=headers,
            cwd=cwd,
            url=url,
            auth=auth,
            tls=tls,
            sandbox=sandbox,
        )

    def auth(self, auth: AuthConfig, path: str) -> AuthConfig:
        """Exactly one place for the token; a token file's path made absolute."""
        if auth.type == "oauth":
            if auth.token_env is not None or auth.token_file is not None:
                self.add(
                    path,
                    "an oauth login has no token_env or token_file: `watchgate auth login` gets the tokens",
                )
            if auth.client_secret_file is None:
                return auth
            secret = join_path(path, "client_secret_file")
            return msgspec.structs.replace(
                auth,
                client_secret_file=self.resolve(self.expand(auth.client_secret_file, secret, tilde=True)),
            )
        if auth.scopes or auth.client_id or auth.client_secret_file or auth.client_metadata_url:
            self.add(
                path, "scopes, client_id, client_secret_file and client_metadata_url are for type: oauth"
            )
        if (auth.token_env is None) == (auth.token_file is None):
            self.add(path, "a bearer token needs exactly one of token_env or token_file")
            return auth
        if auth.token_file is None:
            return auth
        file_path = join_path(path, "token_file")
        return msgspec.structs.replace(
            auth, token_file=self.resolve(self.expand(auth.token_file, file_path, tilde=True))
        )

    def check_transport(self, path: str, raw: dict[Any, Any], u: UpstreamConfig, skip: set[str]) -> None:
        """stdio spawns a command; http, sse and websocket connect to a url. Never a mix."""
        forbidden: tuple[str, ...]
        if u.transport is Transport.STDIO:
            forbidden, other = ("url", "headers", "auth", "tls"), "http, sse and websocket"
            if not u.command and "command" not in skip:
                what = "is empty" if "command" in raw else "is required for a stdio upstream"
                self.add(join_path(path, "command"), f"the command {what}")
        else:
            forbidden, other = (
                ("command", "env", "env_files", "env_keyring", "pass_env", "cwd", "sandbox", "limits"),
                "stdio",
            )
            if u.url is None and "url" not in skip:
                message = f"a url is required when transport is {u.transport}"
                self.add(join_path(path, "url"), message)
            if u.protocol == "modern":
                message = (
                    "'modern' is for stdio servers: over http, 'auto' speaks 2026-07-28 to a server "
                    "that does, and initialize to one that does not"
                )
                self.add(join_path(path, "protocol"), message)
        for key in forbidden:
            if key in raw:
                message = f"{key!r} is only for {other} upstreams, not {u.transport}"
                self.add(join_path(path, key), message)

    def expand(self, text: str, path: str, *, tilde: bool = False) -> str:
        """``${VAR}`` from the environment (``$${VAR}`` keeps it literal); ``~`` when a path."""
        if tilde:
            text = os.path.expanduser(text)

        def substitute(match: re.Match[str]) -> str:
            escaped, name = match.groups()
            if escaped:
                return "${" + name + "}"
            value = self.environ.get(name)
            if value is None:
                self.add(path, f"environment variable {name!r} is not set (used as ${{{name}}})")
                return match[0]
            return value

        return ENV_VAR.sub(substitute, text)

    def resolve(self, path: str) -> str:
        return os.path.normpath(os.path.join(self.base_dir, path))
