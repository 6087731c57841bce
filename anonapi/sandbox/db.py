"""SQLite storage of the sandbox: users, tokens, projects and jobs.

One connection is shared by the web server and the worker threads and every
access holds a lock, so the store is thread-safe. Tokens are stored as SHA-256
hashes (they are random, so a fast hash is enough) and passwords as scrypt
hashes with a salt.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import secrets
import sqlite3
import threading
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

from anonapi.responses import EXTENDED_FIELDS, SHORT_FIELDS, JobStatus

DATABASE_FILE_NAME = "sandbox.sqlite3"

# SQLite builds before 3.32 allow at most 999 parameters in one statement.
MAX_PARAMETERS_PER_QUERY = 900

# Known tokens kept in memory by user_for_token. The cache is emptied when full.
MAX_CACHED_TOKENS = 1000

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS projects (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS user_projects (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, project_id)
);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    job_id INTEGER PRIMARY KEY AUTOINCREMENT,
    date TEXT NOT NULL,
    user_name TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    description TEXT,
    project_name TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    files_downloaded INTEGER,
    files_processed INTEGER,
    destination_name TEXT,
    destination_path TEXT,
    destination_network TEXT,
    destination_status TEXT,
    destination_type TEXT,
    source_instance_id TEXT,
    source_status TEXT,
    source_type TEXT NOT NULL,
    source_anonymizedpatientid TEXT,
    source_anonymizedpatientname TEXT,
    source_pims_keyfile_id TEXT,
    source_name TEXT,
    source_path TEXT,
    source_protocol INTEGER,
    source_subject INTEGER,
    source_sop_class_filter_list TEXT,
    source_ignore_opt_out INTEGER NOT NULL DEFAULT 0,
    source_ignore_opt_out_reason TEXT,
    generation INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, priority, job_id);
"""

# Job fields that modify_job may change, with the type each value is stored as.
MODIFIABLE_FIELDS: Dict[str, type] = {
    "status": str,
    "error": str,
    "description": str,
    "priority": int,
    "files_downloaded": int,
    "files_processed": int,
    "destination_path": str,
    "source_path": str,
    "source_instance_id": str,
    "source_anonymizedpatientid": str,
    "source_anonymizedpatientname": str,
    "source_pims_keyfile_id": str,
    "source_sop_class_filter_list": str,
    "source_ignore_opt_out": bool,
    "source_ignore_opt_out_reason": str,
}

# Columns that create_job fills from its arguments.
CREATE_FIELDS = (
    "description",
    "project_name",
    "priority",
    "destination_path",
    "destination_type",
    "source_type",
    "source_path",
    "source_name",
    "source_instance_id",
    "source_anonymizedpatientid",
    "source_anonymizedpatientname",
    "source_pims_keyfile_id",
    "source_sop_class_filter_list",
)


def now_iso() -> str:
    """Return the local time as the server writes job dates: ISO 8601, seconds, no zone."""
    return datetime.datetime.now().replace(microsecond=0).isoformat()


def hash_token(token: str) -> str:
    """Return the SHA-256 hex digest under which a token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def hash_password(password: str, salt: Optional[bytes] = None) -> str:
    """Return ``scrypt$<salt hex>$<hash hex>`` for a password."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_password(password: str, stored_hash: str) -> bool:
    """Check a password against the output of hash_password, in constant time."""
    try:
        _, salt_hex, _ = stored_hash.split("$")
        expected = hash_password(password, bytes.fromhex(salt_hex))
    except ValueError:
        return False
    return hmac.compare_digest(expected, stored_hash)


class UnknownUserError(KeyError):
    """A user name that the sandbox does not store."""


class SandboxStore:
    """Users, tokens, projects and jobs of one sandbox, in ``<data_dir>/sandbox.sqlite3``."""

    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / DATABASE_FILE_NAME
        self.lock = threading.RLock()
        self.connection = sqlite3.connect(str(self.path), check_same_thread=False)
        self.connection.row_factory = sqlite3.Row
        # Token hash -> user name of tokens found before. No code deletes a
        # token or moves it to another user, so a found token stays valid and
        # only unknown tokens need the query.
        self._token_users: Dict[str, str] = {}
        with self.lock, self.connection:
            self.connection.execute("PRAGMA journal_mode=WAL")
            # With WAL, NORMAL keeps the database consistent after a crash and
            # may lose only the last commits on power loss: fine for a test server.
            self.connection.execute("PRAGMA synchronous=NORMAL")
            self.connection.execute("PRAGMA foreign_keys=ON")
            self.connection.executescript(SCHEMA)

    def close(self) -> None:
        with self.lock:
            self.connection.close()

    # Settings

    def get_setting(self, key: str, default_factory) -> str:
        """Return a stored setting, storing ``default_factory()`` first if it is missing."""
        with self.lock, self.connection:
            row = self.connection.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
            if row is not None:
                return row["value"]
            value = str(default_factory())
            self.connection.execute("INSERT INTO settings (key, value) VALUES (?, ?)", (key, value))
            return value

    # Users, tokens and projects

    def has_user(self, name: str) -> bool:
        with self.lock:
            row = self.connection.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone()
        return row is not None

    def add_user(self, name: str, password: str, projects: Iterable[str] = ()) -> None:
        """Add a user, or set the password of an existing one, and connect it to projects."""
        password_hash = hash_password(password)
        with self.lock, self.connection:
            self.connection.execute(
                "INSERT INTO users (name, password_hash) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET password_hash = excluded.password_hash",
                (name, password_hash),
            )
        for project in projects:
            self.connect_project(name, project)

    def connect_project(self, user_name: str, project_name: str) -> None:
        """Connect a user to a project, creating the project if it is new."""
        with self.lock, self.connection:
            user_id = self._user_id(user_name)
            self.connection.execute("INSERT OR IGNORE INTO projects (name) VALUES (?)", (project_name,))
            project_id = self.connection.execute(
                "SELECT id FROM projects WHERE name = ?", (project_name,)
            ).fetchone()["id"]
            self.connection.execute(
                "INSERT OR IGNORE INTO user_projects (user_id, project_id) VALUES (?, ?)",
                (user_id, project_id),
            )

    def list_users(self) -> List[Dict[str, Any]]:
        """Return every user as ``{"name": ..., "projects": [...]}``, sorted by name."""
        with self.lock:
            rows = self.connection.execute(
                "SELECT users.name AS user_name, projects.name AS project_name FROM users "
                "LEFT JOIN user_projects ON user_projects.user_id = users.id "
                "LEFT JOIN projects ON projects.id = user_projects.project_id "
                "ORDER BY users.name, projects.name"
            ).fetchall()
        users: Dict[str, List[str]] = {}
        for row in rows:
            projects = users.setdefault(row["user_name"], [])
            if row["project_name"] is not None:
                projects.append(row["project_name"])
        return [{"name": name, "projects": projects} for name, projects in users.items()]

    def is_connected(self, user_name: str, project_name: str) -> bool:
        with self.lock:
            row = self.connection.execute(
                "SELECT 1 FROM user_projects "
                "JOIN users ON users.id = user_projects.user_id "
                "JOIN projects ON projects.id = user_projects.project_id "
                "WHERE users.name = ? AND projects.name = ?",
                (user_name, project_name),
            ).fetchone()
        return row is not None

    def check_password(self, user_name: str, password: str) -> bool:
        with self.lock:
            row = self.connection.execute(
                "SELECT password_hash FROM users WHERE name = ?", (user_name,)
            ).fetchone()
        if row is None:
            # Hash anyway, so that the response time does not tell whether the user exists.
            check_password(password, hash_password("not a user"))
            return False
        return check_password(password, row["password_hash"])

    def create_token(self, user_name: str) -> str:
        """Create a new token for a user and return it. Earlier tokens stay valid."""
        token = secrets.token_hex(20)
        with self.lock, self.connection:
            user_id = self._user_id(user_name)
            self.connection.execute(
                "INSERT INTO tokens (user_id, token_hash, created) VALUES (?, ?, ?)",
                (user_id, hash_token(token), now_iso()),
            )
        return token

    def user_for_token(self, token: str) -> Optional[str]:
        """Return the name of the user a token belongs to, or None for an unknown token."""
        token_hash = hash_token(token)
        user_name = self._token_users.get(token_hash)
        if user_name is not None:
            return user_name
        with self.lock:
            row = self.connection.execute(
                "SELECT users.name FROM tokens JOIN users ON users.id = tokens.user_id "
                "WHERE tokens.token_hash = ?",
                (token_hash,),
            ).fetchone()
        if row is None:
            return None
        if len(self._token_users) >= MAX_CACHED_TOKENS:
            self._token_users.clear()
        self._token_users[token_hash] = row["name"]
        return row["name"]

    def _user_id(self, user_name: str) -> int:
        row = self.connection.execute("SELECT id FROM users WHERE name = ?", (user_name,)).fetchone()
        if row is None:
            raise UnknownUserError(user_name)
        return row["id"]

    # Jobs

    def create_job(self, user_name: str, fields: Dict[str, Any]) -> Dict[str, Any]:
        """Store a new ACTIVE job and return its row."""
        columns = ["date", "user_name", "status", "files_downloaded", "files_processed",
                   "destination_status", "source_status"]
        values: List[Any] = [now_iso(), user_name, JobStatus.ACTIVE, 0, 0, "BASE", "NEW"]
        for name in CREATE_FIELDS:
            if fields.get(name) is not None:
                columns.append(name)
                values.append(fields[name])
        # source_protocol is the project's id, NULL for an unknown project.
        columns.append("source_protocol")
        values.append(fields.get("project_name"))
        placeholders = ", ".join("?" for _ in columns[:-1]) + ", (SELECT id FROM projects WHERE name = ?)"
        with self.lock, self.connection:
            cursor = self.connection.execute(
                f"INSERT INTO jobs ({', '.join(columns)}) VALUES ({placeholders})", values
            )
            job_id = cursor.lastrowid
            # source_subject is the job's own id, known only after the insert.
            self.connection.execute("UPDATE jobs SET source_subject = job_id WHERE job_id = ?", (job_id,))
            return self._get_row(job_id)

    def get_job(self, job_id: int) -> Optional[Dict[str, Any]]:
        with self.lock:
            return self._get_row(job_id)

    def _get_row(self, job_id: int) -> Optional[Dict[str, Any]]:
        row = self.connection.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else dict(row)

    def get_jobs(self, job_ids: Sequence[int]) -> List[Dict[str, Any]]:
        """Return the rows of the given jobs that exist, in the order of ``job_ids``."""
        unique_ids = list(dict.fromkeys(job_ids))
        rows_by_id: Dict[int, Dict[str, Any]] = {}
        with self.lock:
            for start in range(0, len(unique_ids), MAX_PARAMETERS_PER_QUERY):
                chunk = unique_ids[start:start + MAX_PARAMETERS_PER_QUERY]
                placeholders = ", ".join("?" for _ in chunk)
                for row in self.connection.execute(
                    f"SELECT * FROM jobs WHERE job_id IN ({placeholders})", chunk
                ):
                    rows_by_id[row["job_id"]] = dict(row)
        return [rows_by_id[job_id] for job_id in unique_ids if job_id in rows_by_id]

    def get_latest_jobs(self, count: int) -> List[Dict[str, Any]]:
        """Return the ``count`` most recent jobs, newest first."""
        with self.lock:
            rows = self.connection.execute(
                "SELECT * FROM jobs ORDER BY job_id DESC LIMIT ?", (count,)
            ).fetchall()
        return [dict(row) for row in rows]

    def modify_job(self, job_id: int, changes: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """Change fields of a job and return its new row, or None if there is no such job.

        Every change increases the job's generation, so that a worker still
        processing the old version of the job notices and lets go of it.
        """
        assignments = [f"{name} = ?" for name in changes] + ["generation = generation + 1"]
        with self.lock, self.connection:
            cursor = self.connection.execute(
                f"UPDATE jobs SET {', '.join(assignments)} WHERE job_id = ?",
                [*changes.values(), job_id],
            )
            if cursor.rowcount == 0:
                return None
            return self._get_row(job_id)

    def next_active_job(self) -> Optional[Dict[str, Any]]:
        """Return the ACTIVE job to process next: highest priority first, then oldest."""
        with self.lock:
            row = self.connection.execute(
                "SELECT * FROM jobs WHERE status = ? ORDER BY priority DESC, job_id ASC LIMIT 1",
                (JobStatus.ACTIVE,),
            ).fetchone()
        return None if row is None else dict(row)

    def update_job_run(self, job_id: int, generation: int, **changes: Any) -> bool:
        """Change fields of a job the worker is processing, unless someone changed it since.

        Returns False when the job's generation moved on (cancelled, reset or
        modified), which signals the worker to stop.
        """
        assignments = ", ".join(f"{name} = ?" for name in changes)
        with self.lock, self.connection:
            cursor = self.connection.execute(
                f"UPDATE jobs SET {assignments} WHERE job_id = ? AND generation = ?",
                [*changes.values(), job_id, generation],
            )
            return cursor.rowcount == 1

    def is_current(self, job_id: int, generation: int) -> bool:
        with self.lock:
            row = self.connection.execute(
                "SELECT 1 FROM jobs WHERE job_id = ? AND generation = ?", (job_id, generation)
            ).fetchone()
        return row is not None

    def requeue_interrupted_jobs(self) -> List[int]:
        """Set jobs left UPLOADED by a stopped server back to ACTIVE, and return their ids."""
        with self.lock, self.connection:
            ids = [
                row["job_id"]
                for row in self.connection.execute(
                    "SELECT job_id FROM jobs WHERE status = ?", (JobStatus.UPLOADED,)
                )
            ]
            self.connection.execute(
                "UPDATE jobs SET status = ?, generation = generation + 1 WHERE status = ?",
                (JobStatus.ACTIVE, JobStatus.UPLOADED),
            )
        return ids

    def job_statuses(self, job_ids: Sequence[int]) -> Dict[int, str]:
        return {row["job_id"]: row["status"] for row in self.get_jobs(job_ids)}


def short_job_info(row: Dict[str, Any]) -> Dict[str, Any]:
    """Return the short job info of a job row, as get_jobs and get_jobs_list send it."""
    return {name: row[name] for name in SHORT_FIELDS}


def extended_job_info(row: Dict[str, Any]) -> Dict[str, Any]:
    """Return the extended job info of a job row, as get_job and create_job send it.

    The sandbox keeps no separate source and destination records, so their ids
    are the job id.
    """
    info = short_job_info(row)
    for name in EXTENDED_FIELDS:
        info[name] = row.get(name)
    info["destination_id"] = row["job_id"]
    info["source_id"] = row["job_id"]
    return info
