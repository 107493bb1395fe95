"""The docker compose stack, checked without a Docker engine.

docker-compose.yml is parsed (YAML anchors and merge keys resolved by PyYAML), its ``${...}``
references are filled from .env.example the way compose fills them from .env, and the result is
held against the code: every AIOREID_* key is a real setting, the settings validate in the
services profile, every command exists in the aio-reid or Celery command line with the options
given, dependencies wait on health checks that exist, and no secret has a default.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, get_args

import pytest
import tomllib
import yaml
from pydantic import BaseModel, ValidationError

from aioreid.platform.config import Profile, Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

INFRA = {"postgres", "redis", "minio", "minio-init", "qdrant"}
APP_SERVICES = {
    "migrate",
    "api",
    "worker-cpu",
    "worker-gpu",
    "worker-encode-cpu",
    "beat",
    "console",
}
# the services that load the encoder (and so need the checkpoint volume)
ENCODER_USERS = {"api", "worker-cpu", "worker-gpu", "worker-encode-cpu"}
# COMPOSE_PROFILES value -> the worker that consumes the `encode` queue
ENCODE_WORKER = {"gpu": "worker-gpu", "cpu": "worker-encode-cpu"}
SECRETS = {
    "POSTGRES_PASSWORD",
    "MINIO_ROOT_USER",
    "MINIO_ROOT_PASSWORD",
    "QDRANT_API_KEY",
    "AIOREID_STORAGE__SIGNING_KEY",
    "AIOREID_API__BOOTSTRAP_API_KEY",
}
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"


# --- compose variable interpolation --------------------------------------------------------


class MissingVariable(KeyError):
    """A ``${VAR:?message}`` reference met an unset or empty variable (compose refuses)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"required variable {name} is missing a value: {message}")
        self.name = name


_REF = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


def references(text: str) -> Iterator[tuple[str, str | None, str]]:
    """(variable, operator, argument) of every ``$VAR`` / ``${VAR<op><arg>}`` in ``text``."""
    for m in _REF.finditer(text):
        if not m["escaped"]:
            yield m["braced"] or m["named"], m["op"], m["arg"] or ""


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's substitution: ``$$``, ``$VAR``, ``${VAR}``, ``${VAR<op>arg}`` with the ops
    ``:-``/``-`` (default), ``:?``/``?`` (required) and ``:+``/``+`` (alternative)."""
    nested = any("$" in (m["arg"] or "") for m in _REF.finditer(text))
    if nested or "$" in _REF.sub("", text):
        raise ValueError(f"invalid or nested interpolation in {text!r}")

    def sub(m: re.Match[str]) -> str:
        if m["escaped"]:
            return "$"
        name, op, arg = m["braced"] or m["named"], m["op"], m["arg"] or ""
        value = env.get(name)
        present = bool(value) if op and op.startswith(":") else value is not None
        if op in (":-", "-"):
            return value if present else interpolate(arg, env)  # type: ignore[return-value]
        if op in (":?", "?"):
            if not present:
                raise MissingVariable(name, arg)
            return value  # type: ignore[return-value]
        if op in (":+", "+"):
            return interpolate(arg, env) if present else ""
        return value or ""

    return _REF.sub(sub, text)


def interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    """Interpolate every string value (not mapping keys), as compose does."""
    if isinstance(node, dict):
        return {k: interpolate_tree(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(v, env) for v in node]
    return interpolate(node, env) if isinstance(node, str) else node


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for v in node.values():
            yield from strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings(v)
    elif isinstance(node, str):
        yield node


# --- files ---------------------------------------------------------------------------------

_ASSIGN = re.compile(r"^(?P<commented>#\s*)?(?P<key>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


def read_env_file(path: Path) -> tuple[dict[str, str], set[str]]:
    """(values of the active ``KEY=value`` lines, keys of active and commented-out lines)."""
    values: dict[str, str] = {}
    documented: set[str] = set()
    for line in path.read_text().splitlines():
        m = _ASSIGN.match(line.strip())
        if not m:
            continue
        documented.add(m["key"])
        if not m["commented"]:
            values[m["key"]] = m["value"].strip().strip("'\"")
    return values, documented


class _StrictLoader(yaml.SafeLoader):
    """Refuses a key twice in one mapping, as compose's YAML parser does (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_compose(text: str | None = None) -> dict[str, Any]:
    return yaml.load(COMPOSE.read_text() if text is None else text, Loader=_StrictLoader)


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["KEY=value", ...]
        return dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def depends_on(service: Mapping[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {k: (v or {}).get("condition", "service_started") for k, v in deps.items()}


def command(service: Mapping[str, Any]) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(a) for a in cmd]


def mounts(service: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of the service's volumes, short or long syntax."""
    out = []
    for v in service.get("volumes") or []:
        if isinstance(v, dict):
            out.append((v.get("source", ""), v["target"]))
        else:
            source, target = v.split(":")[:2]
            out.append((source, target))
    return out


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)[0]


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def stack(raw: dict[str, Any], env_example: dict[str, str]) -> dict[str, Any]:
    """The compose file as `docker compose config` would see it with .env = .env.example."""
    return interpolate_tree(raw, env_example)


def container_env(stack: Mapping[str, Any], name: str, dotenv: Mapping[str, str]) -> dict:
    """A service's environment: its env_file (.env) first, `environment` on top."""
    service = stack["services"][name]
    env: dict[str, str] = {}
    if service.get("env_file"):
        env_files = service["env_file"]
        assert env_files in (".env", [".env"]), f"{name}: env_file should be .env"
        env.update(dotenv)
    env.update(environment(service))
    return env


def active_services(stack: Mapping[str, Any], profile: str) -> set[str]:
    return {
        name
        for name, s in stack["services"].items()
        if not s.get("profiles") or profile in s["profiles"]
    }


# --- the settings-key checker --------------------------------------------------------------


def _submodel(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def settings_key_error(key: str, root: type[BaseModel] = Settings) -> str | None:
    """None when ``key`` sets a field of the settings tree, else why it does not.

    pydantic-settings silently ignores unknown AIOREID_* variables (extra="ignore"), so a
    misspelt key in compose would simply not take effect; this is the guard.
    """
    config = Settings.model_config
    prefix, delimiter = config["env_prefix"], config["env_nested_delimiter"]
    if not key.upper().startswith(prefix.upper()):
        return f"{key}: not an {prefix}* variable"
    model: type[BaseModel] | None = root
    walked: list[str] = []
    for part in key[len(prefix) :].lower().split(delimiter):
        if model is None:
            return f"{key}: {'.'.join(walked)} is a value, it has no field {part!r}"
        if part not in model.model_fields:
            where = ".".join(walked) or "the settings root"
            return f"{key}: {where} has no field {part!r} (fields: {sorted(model.model_fields)})"
        walked.append(part)
        model = _submodel(model.model_fields[part].annotation)
    return None


def environment_blocks(raw: Mapping[str, Any]) -> Iterator[dict[str, str]]:
    """Every service's environment and every ``x-`` block made of variables (the anchors)."""
    for key, block in raw.items():
        is_env = isinstance(block, dict) and all(re.fullmatch(r"[A-Z][A-Z0-9_]*", k) for k in block)
        if key.startswith("x-") and is_env:
            yield environment({"environment": block})
    for service in raw["services"].values():
        if service.get("environment"):
            yield environment(service)


def aioreid_keys_in_compose(raw: Mapping[str, Any]) -> set[str]:
    """AIOREID_* names set in any environment block or referenced as ``${...}``."""
    keys = {k for block in environment_blocks(raw) for k in block if "AIOREID" in k.upper()}
    for text in strings(raw):
        keys |= {name for name, _, _ in references(text) if "AIOREID" in name.upper()}
    return keys


# --- Dockerfile and .dockerignore ----------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        instr, _, args = pending.strip().partition(" ")
        out.append((instr.upper(), args.strip()))
        pending = ""
    return out


def dockerfile_args() -> dict[str, str]:
    args = {}
    for instr, rest in dockerfile_instructions():
        if instr == "ARG" and "=" in rest:
            name, value = rest.split("=", 1)
            args[name] = value.strip("\"'")
    return args


def dockerfile_env() -> dict[str, str]:
    return {
        k: v
        for instr, rest in dockerfile_instructions()
        if instr == "ENV"
        for k, v in re.findall(r"(\w+)=(\S+)", rest)
    }


def dockerignore_excludes(path: str) -> bool:
    """Whether the build context leaves ``path`` out (last matching pattern wins, ``!`` keeps)."""
    patterns = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            patterns.append(line)

    def regex(pattern: str) -> re.Pattern[str]:
        out = ""
        for token in re.split(r"(\*\*/|\*\*|\*|\?)", pattern.strip("/")):
            out += {"**/": "(.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(
                token, re.escape(token)
            )
        return re.compile(out + "$")

    parts = PurePosixPath(path).parts
    excluded = False
    for i in range(1, len(parts) + 1):  # a folder left out takes its contents with it
        prefix = "/".join(parts[:i])
        for pattern in patterns:
            keep = pattern.startswith("!")
            if regex(pattern.lstrip("!")).match(prefix):
                excluded = not keep
        if excluded:
            return True
    return excluded


# --- tests: shape ---------------------------------------------------------------------------


def test_the_strict_loader_refuses_duplicate_keys() -> None:
    with pytest.raises(yaml.constructor.ConstructorError, match="duplicate key 'image'"):
        load_compose("services:\n  a:\n    image: x\n    image: y\n")
    merged = load_compose(
        "x: &x {image: x, restart: 'no'}\nservices:\n  a:\n    <<: *x\n    image: y\n"
    )
    assert merged["services"]["a"] == {"image": "y", "restart": "no"}


def test_the_stack_has_every_service(stack: dict[str, Any]) -> None:
    assert set(stack["services"]) == INFRA | APP_SERVICES
    for name in APP_SERVICES:
        service = stack["services"][name]
        assert service["image"] == stack["services"]["api"]["image"], f"{name}: one image"
        assert service["build"]["context"] == ".", f"{name} builds the repository's Dockerfile"
        assert service["env_file"] == ".env", name


def test_app_services_share_the_wiring(stack: dict[str, Any], env_example: dict) -> None:
    pw = env_example["POSTGRES_PASSWORD"]
    for name in APP_SERVICES:
        env = environment(stack["services"][name])
        assert env["AIOREID_PROFILE"] == "services", name
        assert env["AIOREID_DATABASE__URL"] == (
            f"postgresql+psycopg://aioreid:{pw}@postgres:5432/aioreid"
        ), name
        assert env["AIOREID_STORAGE__BACKEND"] == "minio"
        assert env["AIOREID_STORAGE__ENDPOINT"] == "minio:9000"
        assert env["AIOREID_INDEX__BACKEND"] == "server"
        assert env["AIOREID_INDEX__URL"] == "http://qdrant:6333"
        assert env["AIOREID_BROKER__BROKER_URL"] == "redis://redis:6379/0"
        assert env["AIOREID_BROKER__RESULT_BACKEND"] == "redis://redis:6379/1"
        assert env["AIOREID_BROKER__RUNNER"] == "celery"


# --- tests: settings ------------------------------------------------------------------------


def test_every_aioreid_key_is_a_setting(raw: dict[str, Any]) -> None:
    compose_keys = aioreid_keys_in_compose(raw)
    example_keys = {k for k in read_env_file(ENV_EXAMPLE)[1] if k.startswith("AIOREID")}
    docker_keys = {k for k in dockerfile_env() if "AIOREID" in k.upper()}
    # the collection itself works: known keys from each file are in it
    assert {"AIOREID_DATABASE__URL", "AIOREID_ENCODER__DEVICE"} <= compose_keys
    assert {"AIOREID_API__BOOTSTRAP_API_KEY", "AIOREID_ENCODER__BATCH_SIZE"} <= example_keys
    assert "AIOREID_HOME" in docker_keys
    errors = [
        e for k in sorted(compose_keys | example_keys | docker_keys) if (e := settings_key_error(k))
    ]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("AIOREID_DATABSE__URL", "settings root has no field 'databse'"),
        ("AIOREID_STORAGE__SECRETKEY", "storage has no field 'secretkey'"),
        ("AIOREID_STORAGE_BACKEND", "has no field 'storage_backend'"),
        ("AIOREID_PROFILE__NAME", "profile is a value"),
        ("AIOREID_UI_API_URL", "has no field 'ui_api_url'"),
        ("STORAGE__BACKEND", "not an AIOREID_* variable"),
    ],
)
def test_checker_rejects_misspelt_keys(key: str, why: str) -> None:
    error = settings_key_error(key)
    assert error is not None and why in error, error


@pytest.mark.parametrize(
    "key", ["AIOREID_STORAGE__BACKEND", "aioreid_index__url", "AIOREID_API", "AIOREID_HOME"]
)
def test_checker_accepts_real_keys(key: str) -> None:
    assert settings_key_error(key) is None


def test_checker_catches_a_misspelling_in_the_compose_file() -> None:
    text = COMPOSE.read_text()
    assert "AIOREID_INDEX__URL:" in text
    broken = load_compose(text.replace("AIOREID_INDEX__URL:", "AIOREID_INDEX_URL:", 1))
    errors = [e for k in aioreid_keys_in_compose(broken) if (e := settings_key_error(k))]
    assert errors == [
        f"AIOREID_INDEX_URL: the settings root has no field 'index_url' "
        f"(fields: {sorted(Settings.model_fields)})"
    ]


def _settings_from(env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    import os

    for key in list(os.environ):
        if key.upper().startswith("AIOREID_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("AIOREID_"):
            monkeypatch.setenv(key, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_settings_validate_with_the_compose_environment(
    name: str, stack: dict, env_example: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The example's placeholders are public: the platform refuses to start on them.
    with pytest.raises(ValidationError, match="AIOREID_STORAGE__SIGNING_KEY"):
        _settings_from(container_env(stack, name, env_example), monkeypatch)
    # Replaced by value, so a secret that reaches a service under another name (MinIO's root
    # password as the platform's secret key) stays the same secret.
    env = {
        k: v.replace("change-me", "own") for k, v in container_env(stack, name, env_example).items()
    }
    env_example = {k: v.replace("change-me", "own") for k, v in env_example.items()}
    s = _settings_from(env, monkeypatch)
    assert s.profile is Profile.SERVICES
    assert (
        s.database_url.startswith("postgresql+psycopg://") and "@postgres:5432/" in s.database_url
    )
    assert (s.storage.backend, s.storage.endpoint) == ("minio", "minio:9000")
    assert (s.index.backend, s.index.url) == ("server", "http://qdrant:6333")
    assert s.broker.runner == "celery"
    # the secrets arrive from .env, none of them a built-in default
    assert s.storage.secret_key.get_secret_value() == env_example["MINIO_ROOT_PASSWORD"]
    assert s.storage.access_key.get_secret_value() == env_example["MINIO_ROOT_USER"]
    assert s.storage.signing_key.get_secret_value() == env_example["AIOREID_STORAGE__SIGNING_KEY"]
    assert s.index.api_key is not None
    assert s.index.api_key.get_secret_value() == env_example["QDRANT_API_KEY"]
    assert s.api.bootstrap_api_key is not None
    assert s.api.ingest_roots == [Path("/data/ingest")]
    expected_device = {"worker-gpu": "cuda", "worker-encode-cpu": "cpu"}.get(name, "auto")
    assert s.encoder.device == expected_device
    # and the services profile really is checked: without the database URL it refuses
    env.pop("AIOREID_DATABASE__URL")
    with pytest.raises(ValidationError, match="AIOREID_DATABASE__URL"):
        _settings_from(env, monkeypatch)


# --- tests: commands ------------------------------------------------------------------------


def _aioreid_command_error(argv: list[str]) -> str | None:
    """None when ``aioreid <sub-command> <options>`` parses in the Typer CLI, else why not."""
    import typer

    from aioreid.platform.cli import app

    cmd: Any = typer.main.get_command(app)
    args, path = argv[1:], ["aioreid"]
    while hasattr(cmd, "list_commands"):  # a group: descend by name
        if not args:
            return f"{' '.join(path)} needs a sub-command"
        name, args = args[0], args[1:]
        sub = cmd.get_command(cmd.context_class(cmd), name)
        if sub is None:
            return f"{' '.join(path)} has no command {name!r}"
        cmd, path = sub, [*path, name]
    try:
        cmd.make_context(" ".join(path), list(args))
    except Exception as exc:  # the vendored click's UsageError and friends
        return f"{' '.join(argv)}: {exc}"
    return None


def test_aioreid_commands_exist_with_their_options(stack: dict[str, Any]) -> None:
    checked = {}
    for name, service in stack["services"].items():
        argv = command(service)
        if argv and argv[0] == "aioreid":
            checked[name] = _aioreid_command_error(argv)
    assert set(checked) == {"migrate", "api", "console"}
    assert command(stack["services"]["migrate"]) == ["aioreid", "db", "upgrade"]
    assert {k: v for k, v in checked.items() if v} == {}


def test_the_command_checker_notices_a_wrong_command() -> None:
    assert "no command 'serve'" in (_aioreid_command_error(["aioreid", "serve"]) or "")
    assert "--hots" in (_aioreid_command_error(["aioreid", "api", "--hots", "x"]) or "")
    assert "needs a sub-command" in (_aioreid_command_error(["aioreid", "db"]) or "")


def _celery_params(argv: list[str]) -> tuple[Any, str, dict[str, Any]]:
    """(Celery app, sub-command, parsed options) of ``celery -A <module> <sub> ...``."""
    from celery import Celery
    from celery.app.utils import find_app
    from celery.bin.base import CLIContext
    from celery.bin.celery import celery as celery_cli

    assert argv[:2] in (["celery", "-A"], ["celery", "--app"]), argv
    module, sub, rest = argv[2], argv[3], argv[4:]
    app = find_app(module)
    assert isinstance(app, Celery), f"{module} holds no Celery app"
    ctx = celery_cli.context_class(
        celery_cli, obj=CLIContext(app=app, no_color=True, workdir=None, quiet=True)
    )
    subcommand = celery_cli.get_command(ctx, sub)
    assert subcommand is not None, f"celery has no sub-command {sub!r}"
    return app, sub, subcommand.make_context(sub, list(rest), parent=ctx).params


def _workers(stack: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, service in stack["services"].items():
        argv = command(service)
        if argv[:1] == ["celery"]:
            _, sub, params = _celery_params(argv)
            if sub == "worker":
                out[name] = params
    return out


def test_celery_commands_target_the_app_and_its_queues(stack: dict[str, Any]) -> None:
    from aioreid.workers.app import QUEUES

    workers = _workers(stack)
    assert set(workers) == {"worker-cpu", "worker-gpu", "worker-encode-cpu"}
    for name, params in workers.items():
        assert params["queues"], f"{name} names its queues"
        assert set(params["queues"]) <= set(QUEUES), f"{name}: unknown queue"
    assert workers["worker-cpu"]["queues"] == ["ingest", "index", "maintenance"]
    assert workers["worker-cpu"]["concurrency"] >= 1
    for name in ("worker-gpu", "worker-encode-cpu"):
        assert workers[name]["queues"] == ["encode"]
        assert workers[name]["prefetch_multiplier"] == 1
    assert workers["worker-gpu"]["concurrency"] == 1

    app, sub, params = _celery_params(command(stack["services"]["beat"]))
    assert sub == "beat" and app.conf.beat_schedule
    schedule = PurePosixPath(params["schedule"])
    assert schedule.parent == PurePosixPath(dockerfile_env()["AIOREID_HOME"]), (
        "beat writes its schedule where the service user may write (AIOREID_HOME)"
    )


def test_the_celery_checker_notices_a_wrong_option() -> None:
    import click

    with pytest.raises(click.NoSuchOption, match="--queue-s"):
        _celery_params(["celery", "-A", "aioreid.workers.app", "worker", "--queue-s", "encode"])


@pytest.mark.parametrize("profile", sorted(ENCODE_WORKER))
def test_every_queue_has_a_consumer_in_each_profile(profile: str, stack: dict) -> None:
    from aioreid.workers.app import QUEUES

    active = active_services(stack, profile)
    consumers: dict[str, list[str]] = {q: [] for q in QUEUES}
    for name, params in _workers(stack).items():
        if name in active:
            for q in params["queues"]:
                consumers[q].append(name)
    assert consumers["encode"] == [ENCODE_WORKER[profile]]
    assert all(consumers.values()), f"queues nobody consumes: {consumers}"
    assert {"beat", "api", "console", "migrate"} <= active


def test_env_example_picks_an_encode_profile(env_example: dict[str, str]) -> None:
    profiles = env_example["COMPOSE_PROFILES"].split(",")
    assert len(set(profiles) & set(ENCODE_WORKER)) == 1, "choose exactly one of gpu, cpu"


def test_the_gpu_worker_reserves_an_nvidia_device(stack: dict[str, Any]) -> None:
    gpu = stack["services"]["worker-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert environment(gpu)["AIOREID_ENCODER__DEVICE"] == "cuda"
    assert "deploy" not in stack["services"]["worker-encode-cpu"]


# --- tests: dependencies and volumes --------------------------------------------------------


def _healthcheck(service: Mapping[str, Any]) -> list[str] | None:
    check = service.get("healthcheck")
    if not check or check.get("disable") or check.get("test") in (["NONE"], "NONE"):
        return None
    return check["test"]


def test_dependencies_wait_on_real_health_checks_and_one_shots(stack: dict[str, Any]) -> None:
    services = stack["services"]
    one_shots = {n for n, s in services.items() if s.get("restart") in (None, "no")}
    assert one_shots == {"migrate", "minio-init"}
    for name, service in services.items():
        for target, condition in depends_on(service).items():
            assert target in services, f"{name} depends on unknown {target}"
            assert not services[target].get("profiles") or service.get("profiles"), (
                f"{name} always runs but {target} only in a profile"
            )
            if condition == "service_healthy":
                assert _healthcheck(services[target]), f"{name} waits for {target}'s health"
            elif condition == "service_completed_successfully":
                assert target in one_shots, f"{name} waits for {target} to exit"
            else:
                pytest.fail(f"{name} -> {target}: start order only ({condition})")
    needs = {
        "migrate": "service_completed_successfully",
        "minio-init": "service_completed_successfully",
        "qdrant": "service_healthy",
        "redis": "service_healthy",
    }
    for name in ENCODER_USERS:
        assert depends_on(services[name]) == needs, name
    assert depends_on(services["migrate"]) == {"postgres": "service_healthy"}
    assert depends_on(services["minio-init"]) == {"minio": "service_healthy"}
    assert depends_on(services["console"]) == {"api": "service_healthy"}
    assert "/healthz" in " ".join(_healthcheck(services["api"]) or [])


def test_minio_init_creates_the_bucket_the_platform_uses(stack: dict, env_example: dict) -> None:
    init = stack["services"]["minio-init"]
    bucket = environment(init)["BUCKET"]
    assert bucket == environment(stack["services"]["api"])["AIOREID_STORAGE__BUCKET"]
    script = " ".join(command(init))
    assert "mc mb --ignore-existing" in script and "${BUCKET}" in script
    # compose's $$ became $: the shell in the container expands it, not compose
    assert "${MINIO_ROOT_PASSWORD}" in script and env_example["MINIO_ROOT_PASSWORD"] not in script


def test_named_volumes_are_declared_and_hold_the_state(stack: dict[str, Any]) -> None:
    declared = set(stack.get("volumes") or {})
    used = set()
    for name, service in stack["services"].items():
        for source, _ in mounts(service):
            if source and not source.startswith(("/", ".", "~")):
                assert source in declared, f"{name} mounts undeclared volume {source}"
                used.add(source)
    assert used == declared, f"declared but unused: {declared - used}"
    targets = {n: dict((t, s) for s, t in mounts(stack["services"][n])) for n in stack["services"]}
    assert targets["postgres"]["/var/lib/postgresql/data"] in declared
    assert targets["qdrant"]["/qdrant/storage"] in declared
    assert targets["minio"]["/data"] in declared


def test_checkpoint_and_ingest_folders_are_mounted(stack: dict, env_example: dict) -> None:
    """The checkpoint is found by every encoder user; folders the API accepts for ingestion
    are readable by the API and by the ingest worker (jobs carry paths, not bytes)."""

    def under_a_mount(name: str, path: str) -> bool:
        targets = {PurePosixPath(t) for _, t in mounts(stack["services"][name])}
        p = PurePosixPath(path)
        return any(t == p or t in p.parents for t in targets)

    for name in ENCODER_USERS:
        env = container_env(stack, name, env_example)
        checkpoint = env["AIOREID_ENCODER__CHECKPOINT"]
        assert under_a_mount(name, checkpoint), f"{name}: {checkpoint} is on no volume"
        roots = json.loads(env["AIOREID_API__INGEST_ROOTS"])
        assert roots, "the API would default to its working directory, /app"
        for root in roots:
            if name in ("api", "worker-cpu"):
                assert under_a_mount(name, root), f"{name}: ingest root {root} not mounted"


# --- tests: secrets -------------------------------------------------------------------------


def test_secrets_are_required_and_documented(raw: dict[str, Any]) -> None:
    values, documented = read_env_file(ENV_EXAMPLE)
    refs = [r for text in strings(raw) for r in references(text)]
    required = {name for name, op, _ in refs if op in (":?", "?")}
    assert required >= SECRETS
    for name, op, _ in refs:
        assert name in documented, f"${{{name}}} is not documented in .env.example"
        if op is None:
            assert values.get(name), f"${{{name}}} has no default: .env.example must set it"
        if name in SECRETS:
            assert op == ":?", f"{name} must be ${{{name}:?...}} everywhere, never defaulted"
    for name in required:
        assert "change-me" in values[name], f".env.example: {name} should be a placeholder"


@pytest.mark.parametrize("secret", sorted(SECRETS))
def test_compose_refuses_to_start_without_a_secret(
    secret: str, raw: dict[str, Any], env_example: dict[str, str]
) -> None:
    env = {k: v for k, v in env_example.items() if k != secret}
    with pytest.raises(MissingVariable) as err:
        interpolate_tree(raw, env)
    assert err.value.name == secret


def test_no_credential_is_written_into_the_compose_file(raw: dict[str, Any]) -> None:
    secretish = re.compile(r"PASSWORD|SECRET|_KEY$|ROOT_USER")
    seen = 0
    for env in environment_blocks(raw):
        for key, value in env.items():
            if secretish.search(key):
                seen += 1
                assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", value), f"{key}: {value!r}"
    assert seen >= 8
    url = raw["x-aioreid-env"]["AIOREID_DATABASE__URL"]
    assert "${POSTGRES_PASSWORD:?" in url


def test_interpolation_follows_compose_rules() -> None:
    env = {"SET": "v", "EMPTY": ""}
    assert interpolate("${SET:-d} ${EMPTY:-d} ${EMPTY-d} ${UNSET-d} $$SET $SET", env) == (
        "v d  d $SET v"
    )
    assert interpolate("${SET:+alt}${UNSET:+alt}", env) == "alt"
    with pytest.raises(MissingVariable, match="EMPTY is missing a value: say why"):
        interpolate("${EMPTY:?say why}", env)
    with pytest.raises(ValueError, match="invalid"):
        interpolate("${A:-${B}}", env)


# --- tests: image ---------------------------------------------------------------------------


def test_dockerfile_builds_the_package_from_the_source_tree() -> None:
    steps = dockerfile_instructions()
    args = dockerfile_args()
    from_image = next(a for i, a in steps if i == "FROM")
    assert interpolate(from_image, args) == "python:3.11-slim"
    assert args["TORCH_INDEX_URL"] == CPU_TORCH_INDEX
    runs = [a for i, a in steps if i == "RUN"]
    torch_step = next(r for r in runs if "${TORCH_PACKAGES}" in r)
    assert '--index-url "${TORCH_INDEX_URL}"' in torch_step
    assert "offline" in args["EXTRAS"].split(",")
    assert any("libglib2.0-0" in r for r in runs)
    # the dependency layer installs pyproject's dependencies and the chosen extras
    assert any("p['dependencies']" in r and "pip install -r" in r for r in runs)

    order = [f"{i} {a}" for i, a in steps]
    copy_all = order.index("COPY . .")
    install = next(k for k, s in enumerate(order) if 'pip install --no-deps -e ".[' in s)
    # editable: migrations/ is found next to the installed sources (a wheel lacks it)
    assert copy_all < install
    assert ("WORKDIR", "/app") in steps
    users = [(k, a) for k, (i, a) in enumerate(steps) if i == "USER"]
    assert users and users[-1][1] not in ("root", "0"), "services run unprivileged"
    assert users[-1][0] > install


def test_image_torch_pins_match_the_makefile() -> None:
    makefile = (ROOT / "Makefile").read_text()
    pins = re.search(r"^TORCH_PINS\s*:?=\s*(.+)$", makefile, re.M)
    assert pins is not None
    assert set(dockerfile_args()["TORCH_PACKAGES"].split()) == set(pins.group(1).split())


def test_build_context_keeps_sources_and_leaves_out_secrets() -> None:
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    kept = ["pyproject.toml", "README.md", "alembic.ini", "migrations/env.py"]
    kept += [
        p.relative_to(ROOT).as_posix() for p in (ROOT / "migrations" / "versions").glob("*.py")
    ]
    for folder in mapping["package-dir"].values():
        kept += [
            p.relative_to(ROOT).as_posix()
            for p in (ROOT / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        ]
    assert len(kept) > 20
    left_out = [p for p in kept if dockerignore_excludes(p)]
    assert not left_out, f".dockerignore drops what the image needs: {left_out[:5]}"
    for path in [
        ".env",
        ".env.local",
        ".venv/bin/python",
        "var/aioreid.db",
        ".git/HEAD",
        "aio_reid.egg-info/PKG-INFO",
        "platform/db/__pycache__/models.cpython-311.pyc",
        "benchmarks/results/ingest.json",
    ]:
        assert dockerignore_excludes(path), f"{path} would be copied into the image"
