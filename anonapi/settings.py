"""The user's settings file: servers, credentials and defaults for new jobs.

The file is ``AnonWebAPIClientSettings.yml`` in the home folder, or the path
in the environment variable ``ANONAPI_SETTINGS``. It is YAML in the format
that anonapi 2.x writes::

    active_mapping_file: null
    active_server_name: testserver
    job_default_parameters:
    - project,NOT_SET
    - destination_path,.
    servers:
      testserver: https://hostname_of_api
    user_name: username
    user_token: token
    validate_ssl: true

Older formats are read as well: releases before 1.4 stored the job defaults
as a map with ``project_name`` and ``destination_path``, under
``job_default_parameters`` or ``create_job_defaults``. Saving always writes
the format above, plus the keys this version added (``max_concurrent_requests``,
``unc_paths``, ``connect_timeout``, ``read_timeout``). Keys this version does
not know are kept as they are.
"""

from __future__ import annotations

import logging
import math
import os
import stat
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from anonapi.exceptions import ConfigurationError
from anonapi.fileio import atomic_write_text, file_lock
from anonapi.objects import RemoteAnonServer

logger = logging.getLogger(__name__)

SETTINGS_FILE_NAME = "AnonWebAPIClientSettings.yml"
SETTINGS_PATH_VARIABLE = "ANONAPI_SETTINGS"

# The file contains the API token, so only its owner may read it.
SETTINGS_FILE_MODE = 0o600

DEFAULT_MAX_CONCURRENT_REQUESTS = 8
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 60.0

# The client keeps at most 32 connections per server (anonapi.client.CONNECTION_POOL_SIZE).
# More requests at once would open and drop a connection for each extra request.
MAX_CONCURRENT_REQUESTS = 32

# A longer timeout is a typing error, and sockets reject values of about 300 years and more.
MAX_TIMEOUT_SECONDS = 24 * 60 * 60.0

# Keys of ``key,value`` job default strings, as anonapi 2.x writes them, mapped
# to JobDefaults attributes.
_JOB_DEFAULT_KEYS = {"project": "project_name", "destination_path": "destination_path"}

_KNOWN_KEYS = {
    "servers",
    "active_server_name",
    "user_name",
    "user_token",
    "validate_ssl",
    "active_mapping_file",
    "job_default_parameters",
    "create_job_defaults",
    "max_concurrent_requests",
    "unc_paths",
    "connect_timeout",
    "read_timeout",
}


def default_settings_path() -> Path:
    """Return the settings file path: ``$ANONAPI_SETTINGS``, else the home folder's file."""
    from_environment = os.environ.get(SETTINGS_PATH_VARIABLE)
    try:
        if from_environment:
            return Path(from_environment).expanduser()
        return Path.home() / SETTINGS_FILE_NAME
    except RuntimeError as error:
        # Raised when HOME is not set and the user has no entry in the password database,
        # or for a '~otheruser' path naming no user.
        raise ConfigurationError(
            f"Cannot find the home folder for the settings file ({str(error).rstrip('.')}). "
            f"Set {SETTINGS_PATH_VARIABLE} to the full path of the settings file."
        ) from error


class JobDefaults:
    """Values that new jobs get when the mapping does not set them.

    ``other_parameters`` keeps ``key,value`` entries this version does not
    know, so that saving does not drop them.
    """

    def __init__(
        self,
        project_name: str = "NOT_SET",
        destination_path: str = ".",
        other_parameters: Optional[Dict[str, str]] = None,
    ):
        self.project_name = project_name
        self.destination_path = destination_path
        self.other_parameters: Dict[str, str] = dict(other_parameters or {})

    def to_strings(self) -> List[str]:
        """Return the defaults as ``key,value`` strings, the form anonapi 2.x stores."""
        strings = [f"project,{self.project_name}", f"destination_path,{self.destination_path}"]
        strings.extend(f"{key},{value}" for key, value in self.other_parameters.items())
        return strings

    def __repr__(self) -> str:
        return f"JobDefaults(project_name={self.project_name!r}, destination_path={self.destination_path!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, JobDefaults)
            and self.project_name == other.project_name
            and self.destination_path == other.destination_path
            and self.other_parameters == other.other_parameters
        )


class AnonClientSettings:
    """Everything the settings file stores, as Python values."""

    def __init__(
        self,
        servers: Optional[List[RemoteAnonServer]] = None,
        active_server: Optional[RemoteAnonServer] = None,
        user_name: str = "",
        user_token: str = "",
        validate_ssl: bool = True,
        job_defaults: Optional[JobDefaults] = None,
        active_mapping_file: Optional[Path] = None,
        max_concurrent_requests: int = DEFAULT_MAX_CONCURRENT_REQUESTS,
        unc_paths: Optional[Dict[str, str]] = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        unknown_keys: Optional[Dict[str, Any]] = None,
    ):
        self.servers: List[RemoteAnonServer] = list(servers or [])
        self.active_server = active_server
        self.user_name = user_name
        self.user_token = user_token
        self.validate_ssl = validate_ssl
        self.job_defaults = job_defaults or JobDefaults()
        self.active_mapping_file = active_mapping_file
        self.max_concurrent_requests = max_concurrent_requests
        self.unc_paths: Dict[str, str] = dict(unc_paths or {})
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        # Keys written by a newer version, kept so that saving does not lose them.
        self.unknown_keys: Dict[str, Any] = dict(unknown_keys or {})

    @property
    def has_token(self) -> bool:
        """Whether a token is set. The token itself is never shown."""
        return bool(self.user_token and self.user_token.strip())

    @property
    def timeout(self) -> tuple:
        """Connect and read timeouts in seconds, as requests takes them."""
        return (self.connect_timeout, self.read_timeout)

    def get_server(self, name: str) -> Optional[RemoteAnonServer]:
        """Return the server called ``name``, or None."""
        for server in self.servers:
            if server.name == name:
                return server
        return None

    def to_dict(self) -> Dict[str, Any]:
        """Return the settings as the YAML file stores them, keys sorted."""
        data: Dict[str, Any] = dict(self.unknown_keys)
        data.update(
            {
                "active_mapping_file": None if self.active_mapping_file is None else str(self.active_mapping_file),
                "active_server_name": None if self.active_server is None else self.active_server.name,
                "connect_timeout": self.connect_timeout,
                "job_default_parameters": self.job_defaults.to_strings(),
                "max_concurrent_requests": self.max_concurrent_requests,
                "read_timeout": self.read_timeout,
                "servers": {server.name: server.url for server in self.servers},
                "unc_paths": dict(self.unc_paths),
                "user_name": self.user_name,
                "user_token": self.user_token,
                "validate_ssl": self.validate_ssl,
            }
        )
        return dict(sorted(data.items()))

    def __repr__(self) -> str:
        # No token here: reprs end up in logs and tracebacks.
        return (
            f"AnonClientSettings(servers={self.servers!r}, active_server={self.active_server!r}, "
            f"user_name={self.user_name!r}, has_token={self.has_token})"
        )


class SettingsFile:
    """Reads and writes the settings at one path.

    ``created`` is True after ``load`` made a new file with defaults.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.created = False
        # The settings as this object last read or wrote them, to tell its own changes from other processes'.
        self._known: Optional[Dict[str, Any]] = None

    def load(self) -> AnonClientSettings:
        """Read the settings, creating the file with defaults if it does not exist.

        A file that cannot be read or parsed is left untouched.

        :raises ConfigurationError: naming the file, and the line where one is known
        """
        if not self.path.exists():
            settings = AnonClientSettings()
            self.save(settings)
            self.created = True
            logger.info("Created settings file '%s' with default values", self.path)
            return settings

        settings = self._read()
        self._known = settings.to_dict()
        self._restrict_permissions()
        return settings

    def save(self, settings: AnonClientSettings) -> None:
        """Write the settings atomically, readable by the owner only.

        After ``load``, only what changed since is written over the file as it
        is now, under a lock. So two ``anon`` processes that change different
        settings at the same time keep both changes; where both change the
        same key, the later save wins.

        :raises ConfigurationError: if the file cannot be written
        """
        # A symbolic link, for example into a folder of dotfiles, stays a link: the file it points to is replaced.
        target = self.path.resolve() if self.path.is_symlink() else self.path
        if not target.parent.is_dir():
            raise ConfigurationError(
                f"Cannot write settings file '{self.path}': folder '{target.parent}' does not exist. "
                f"Create it, or point {SETTINGS_PATH_VARIABLE} to a file in an existing folder."
            )
        if target.exists():
            # Replacing a device such as /dev/null, a pipe or a folder would destroy it.
            self._check_regular_file(target)
        data = settings.to_dict()
        try:
            with file_lock(target):
                if self._known is not None and target.exists():
                    data = self._merged_with_file(data)
                text = yaml.safe_dump(data, default_flow_style=False, sort_keys=False, allow_unicode=True)
                atomic_write_text(target, text, mode=SETTINGS_FILE_MODE)
        except OSError as error:
            raise ConfigurationError(
                f"Cannot write settings file '{self.path}': {error.strerror or error}. Check the folder's permissions."
            ) from error
        self._known = data

    def _read(self) -> AnonClientSettings:
        self._check_regular_file(self.path)
        text = self._read_text()
        return _SettingsParser(self.path, text).parse(self._parse_yaml(text))

    def _merged_with_file(self, data: Dict[str, Any]) -> Dict[str, Any]:
        """Return the file's settings with this object's changes since it last read or wrote them."""
        assert self._known is not None
        try:
            current = self._read().to_dict()
        except ConfigurationError:
            # Made unreadable since: this object's settings are the last valid ones.
            return data
        merged = _merge_changes(self._known, data, current)
        try:
            # A merge can combine two valid files into an invalid one, such as an
            # active server that the other process removed.
            return _SettingsParser(self.path, "").parse(merged).to_dict()
        except ConfigurationError:
            return data

    def _check_regular_file(self, path: Path) -> None:
        try:
            mode = path.stat().st_mode
        except OSError as error:
            raise ConfigurationError(
                f"Cannot read settings file '{self.path}': {error.strerror or error}. Check that it is a readable file."
            ) from error
        if stat.S_ISDIR(mode):
            raise ConfigurationError(
                f"Cannot use settings file '{self.path}': it is a folder. "
                f"Move the folder away, or point {SETTINGS_PATH_VARIABLE} to a file."
            )
        if not stat.S_ISREG(mode):
            raise ConfigurationError(
                f"Cannot use settings file '{self.path}': it is a device, pipe or socket, not a regular file. "
                f"Point {SETTINGS_PATH_VARIABLE} to a regular file."
            )

    def _read_text(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise ConfigurationError(
                f"Cannot read settings file '{self.path}': it is not UTF-8 text "
                f"(invalid byte at position {error.start}). Fix or delete the file."
            ) from error
        except OSError as error:
            raise ConfigurationError(
                f"Cannot read settings file '{self.path}': {error.strerror or error}. Check that it is a readable file."
            ) from error

    def _parse_yaml(self, text: str) -> Dict[str, Any]:
        try:
            data = yaml.load(text, Loader=_SafeLoader)
        except yaml.YAMLError as error:
            raise ConfigurationError(
                f"Invalid YAML in settings file '{self.path}'{_describe_yaml_error(error)}. "
                "Fix the file in an editor, or delete it to start again with defaults."
            ) from error
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ConfigurationError(
                f"Invalid settings file '{self.path}', line 1: expected a map of keys to values, "
                f"found {type(data).__name__}. Fix the file, or delete it to start again with defaults."
            )
        return data

    def _restrict_permissions(self) -> None:
        """Take read access away from group and others, which anonapi 2.x files allowed."""
        if os.name != "posix":
            return
        try:
            mode = self.path.stat().st_mode & 0o777
            if mode & 0o077:
                os.chmod(self.path, mode & 0o700)
                logger.info("Settings file '%s' contains a token: removed read access for others", self.path)
        except OSError as error:
            logger.warning("Could not restrict permissions of settings file '%s': %s", self.path, error)


def _merge_changes(base: Dict[str, Any], ours: Dict[str, Any], theirs: Dict[str, Any]) -> Dict[str, Any]:
    """Return ``theirs`` with the keys that changed from ``base`` to ``ours`` taken from ``ours``.

    Maps in all three (servers, unc_paths) are merged key by key in the same way.
    """
    merged = dict(theirs)
    for key in set(base) | set(ours):
        if key in ours and key in base and ours[key] == base[key]:
            continue
        if key not in ours:
            if key in base:
                merged.pop(key, None)  # removed here
            continue
        mine, original, other = ours[key], base.get(key), theirs.get(key)
        if isinstance(mine, dict) and isinstance(original, dict) and isinstance(other, dict):
            merged[key] = _merge_changes(original, mine, other)
        else:
            merged[key] = mine
    return dict(sorted(merged.items()))


# The C loader exists where PyYAML was built with libyaml, and is faster than the Python one.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _describe_yaml_error(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None)
    where = f", line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
    return f"{where}: {problem}" if problem else where


class _SettingsParser:
    """Turns the loaded YAML into AnonClientSettings, naming the line of each invalid value."""

    def __init__(self, path: Path, text: str):
        self.path = path
        self.text = text

    def parse(self, data: Dict[str, Any]) -> AnonClientSettings:
        servers = self._parse_servers(data.get("servers"))
        return AnonClientSettings(
            servers=servers,
            active_server=self._parse_active_server(data.get("active_server_name"), servers),
            user_name=self._parse_text("user_name", data.get("user_name")),
            user_token=self._parse_text("user_token", data.get("user_token")),
            validate_ssl=self._parse_bool("validate_ssl", data.get("validate_ssl"), default=True),
            job_defaults=self._parse_job_defaults(data),
            active_mapping_file=self._parse_path("active_mapping_file", data.get("active_mapping_file")),
            max_concurrent_requests=self._parse_positive_int(
                "max_concurrent_requests",
                data.get("max_concurrent_requests"),
                DEFAULT_MAX_CONCURRENT_REQUESTS,
                MAX_CONCURRENT_REQUESTS,
            ),
            unc_paths=self._parse_unc_paths(data.get("unc_paths")),
            connect_timeout=self._parse_seconds("connect_timeout", data.get("connect_timeout"), DEFAULT_CONNECT_TIMEOUT),
            read_timeout=self._parse_seconds("read_timeout", data.get("read_timeout"), DEFAULT_READ_TIMEOUT),
            unknown_keys={key: value for key, value in data.items() if key not in _KNOWN_KEYS},
        )

    def error(self, key: str, problem: str) -> ConfigurationError:
        return ConfigurationError(
            f"Invalid settings file '{self.path}', line {self._line_of(key)}: {problem}. "
            "Fix the file in an editor, or delete it to start again with defaults."
        )

    def _line_of(self, key: str) -> int:
        """Return the 1-based line of a top-level key, or 1 if it cannot be found."""
        node = yaml.compose(self.text, Loader=_SafeLoader)
        if isinstance(node, yaml.MappingNode):
            for key_node, _ in node.value:
                if key_node.value == key:
                    return key_node.start_mark.line + 1
        return 1

    def _parse_servers(self, value: Any) -> List[RemoteAnonServer]:
        if value is None:
            return []
        if isinstance(value, dict):
            for name, url in value.items():
                if not isinstance(url, str) or not url.strip():
                    raise self.error("servers", f"server '{name}' must have a URL, found {url!r}")
            return [RemoteAnonServer(str(name), url) for name, url in value.items()]
        if isinstance(value, list):
            # A list of {name, url} maps, the form batch files use for one server.
            try:
                servers = [RemoteAnonServer.from_dict(item) for item in value]
            except ValueError as error:
                raise self.error("servers", str(error)) from error
            names = [server.name for server in servers]
            repeated = sorted({name for name in names if names.count(name) > 1})
            if repeated:
                raise self.error("servers", f"server names must be unique, found {', '.join(repeated)} more than once")
            return servers
        raise self.error("servers", f"'servers' must map server names to URLs, found {value!r}")

    def _parse_active_server(self, name: Any, servers: List[RemoteAnonServer]) -> Optional[RemoteAnonServer]:
        if name is None or name == "":
            return None
        for server in servers:
            if server.name == str(name):
                return server
        known = ", ".join(server.name for server in servers) or "none"
        raise self.error(
            "active_server_name",
            f"active server '{name}' is not in the list of servers (known: {known})",
        )

    def _parse_text(self, key: str, value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, (dict, list)):
            raise self.error(key, f"'{key}' must be text")
        return str(value)

    def _parse_bool(self, key: str, value: Any, default: bool) -> bool:
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise self.error(key, f"'{key}' must be true or false, found {value!r}")

    def _parse_path(self, key: str, value: Any) -> Optional[Path]:
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self.error(key, f"'{key}' must be a path, found {value!r}")
        return Path(value)

    def _parse_positive_int(self, key: str, value: Any, default: int, maximum: int) -> int:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
            raise self.error(key, f"'{key}' must be a whole number from 1 to {maximum}, found {value!r}")
        return value

    def _parse_seconds(self, key: str, value: Any, default: float) -> float:
        if value is None:
            return default
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or not 0 < value <= MAX_TIMEOUT_SECONDS
        ):
            raise self.error(
                key, f"'{key}' must be a number of seconds above 0 and at most {MAX_TIMEOUT_SECONDS:g}, found {value!r}"
            )
        return float(value)

    def _parse_unc_paths(self, value: Any) -> Dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error("unc_paths", f"'unc_paths' must map local path prefixes to UNC prefixes, found {value!r}")
        for local, unc in value.items():
            if not isinstance(unc, str) or not unc:
                raise self.error("unc_paths", f"the UNC prefix for '{local}' must be text, found {unc!r}")
        return {str(local): unc for local, unc in value.items()}

    def _parse_job_defaults(self, data: Dict[str, Any]) -> JobDefaults:
        for key in ("job_default_parameters", "create_job_defaults"):
            value = data.get(key)
            if value is None:
                continue
            if isinstance(value, list):
                return self._parse_job_default_strings(key, value)
            if isinstance(value, dict):
                return self._parse_job_default_map(key, value)
            raise self.error(key, f"'{key}' must be a list of 'key,value' entries, found {value!r}")
        return JobDefaults()

    def _parse_job_default_map(self, key: str, value: Dict[Any, Any]) -> JobDefaults:
        """Read job defaults as releases before 1.4 stored them: a map with project_name and destination_path."""
        defaults = JobDefaults()
        for name, item in value.items():
            if item is None:
                continue
            if isinstance(item, (dict, list)):
                raise self.error(key, f"job default '{name}' must be text, found {item!r}")
            if name in ("project_name", "destination_path"):
                setattr(defaults, str(name), str(item))
            else:
                defaults.other_parameters[str(name)] = str(item)
        return defaults

    def _parse_job_default_strings(self, key: str, entries: List[Any]) -> JobDefaults:
        defaults = JobDefaults()
        for entry in entries:
            name, separator, value = str(entry).partition(",")
            if not separator:
                raise self.error(key, f"job default {entry!r} is not of the form 'key,value'")
            name, value = name.strip(), value.strip()
            if name in _JOB_DEFAULT_KEYS:
                setattr(defaults, _JOB_DEFAULT_KEYS[name], value)
            else:
                defaults.other_parameters[name] = value
        return defaults
