"""Grants: per-person or per-agent bearer tokens bound to one server route.

A token is `mcpp.<grant id>.<secret>`; only its SHA-256 is stored (the secret has 256
bits of entropy, so a slow hash buys nothing). The id in the token finds the record and
the hash is compared with `hmac.compare_digest`, so the check takes the same time
whatever the guess. The embedded store is SQLite; with Redis configured, grants and
their revocation live in Redis so every replica sees a revocation on the next request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

TOKEN_PREFIX = "mcpp"
_DUMMY_HASH = hashlib.sha256(b"mcpp-no-such-grant").hexdigest()
_MISS = object()


@dataclass(frozen=True)
class GrantRecord:
    id: str
    server: str
    label: str
    token_hash: str
    policy: str | None
    groups: tuple[str, ...]
    created_at: str
    revoked_at: str | None

    def public(self) -> dict:
        return {
            "id": self.id, "server": self.server, "label": self.label, "policy": self.policy,
            "groups": list(self.groups), "created_at": self.created_at, "revoked_at": self.revoked_at,
        }


def new_token() -> tuple[str, str]:
    gid = "g_" + secrets.token_hex(8)
    return gid, f"{TOKEN_PREFIX}.{gid}.{secrets.token_urlsafe(32)}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def grant_id_of(token: str) -> str | None:
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1].startswith("g_") or len(parts[1]) > 40:
        return None
    return parts[1]


def check_token(record: GrantRecord | None, token: str) -> TypeGuard[GrantRecord]:
    """Constant-time: a missing record still costs one comparison."""
    ok = hmac.compare_digest(record.token_hash if record else _DUMMY_HASH, token_hash(token))
    return ok and record is not None and record.revoked_at is None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class SQLiteGrants:
    """Grants in `<state>/grants.db`; the CLI and every gateway on this state dir share it."""

    def __init__(self, state_dir: str | Path):
        Path(state_dir).mkdir(parents=True, exist_ok=True)
        self.path = Path(state_dir) / "grants.db"
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS grants (id TEXT PRIMARY KEY, server TEXT NOT NULL, label TEXT NOT NULL,"
            " token_hash TEXT NOT NULL, policy TEXT, groups TEXT NOT NULL DEFAULT '[]', created_at TEXT NOT NULL,"
            " revoked_at TEXT)"
        )
        self._cache: dict = {}
        self._version = None

    def create(self, server: str, label: str, policy: str | None = None, groups=()) -> tuple[GrantRecord, str]:
        gid, token = new_token()
        rec = GrantRecord(gid, server, label, token_hash(token), policy, tuple(groups), _now(), None)
        self.db.execute(
            "INSERT INTO grants VALUES (?,?,?,?,?,?,?,NULL)",
            (rec.id, rec.server, rec.label, rec.token_hash, rec.policy, json.dumps(list(rec.groups)), rec.created_at),
        )
        return rec, token

    def get(self, gid: str) -> GrantRecord | None:
        """Read through a cache that is dropped whenever any other connection (the CLI, another
        gateway) has committed to the file: `PRAGMA data_version` says so, so a revocation is
        seen on the very next request."""
        version = self.db.execute("PRAGMA data_version").fetchone()[0]
        if version != self._version:
            self._cache.clear()
            self._version = version
        hit = self._cache.get(gid, _MISS)
        if hit is not _MISS:
            return hit
        row = self.db.execute("SELECT * FROM grants WHERE id=?", (gid,)).fetchone()
        rec = _row(row) if row else None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[gid] = rec
        return rec

    def list(self, server: str | None = None) -> list[GrantRecord]:
        if server is None:
            rows = self.db.execute("SELECT * FROM grants ORDER BY created_at, id").fetchall()
        else:
            rows = self.db.execute("SELECT * FROM grants WHERE server=? ORDER BY created_at, id", (server,)).fetchall()
        return [_row(r) for r in rows]

    def revoke(self, gid: str) -> bool:
        cur = self.db.execute("UPDATE grants SET revoked_at=? WHERE id=? AND revoked_at IS NULL", (_now(), gid))
        self._cache.clear()  # our own commits do not move data_version
        return cur.rowcount == 1 or self.get(gid) is not None

    def ping(self) -> None:
        self.db.execute("SELECT 1").fetchone()

    def close(self) -> None:
        self.db.close()


def _row(r) -> GrantRecord:
    return GrantRecord(r[0], r[1], r[2], r[3], r[4], tuple(json.loads(r[5] or "[]")), r[6], r[7])


class RedisGrants:
    """Grants as Redis hashes `mcpp:grant:<id>`: shared by every replica on the same Redis."""

    PREFIX = "mcpp:grant:"

    def __init__(self, client):
        self.r = client

    def create(self, server: str, label: str, policy: str | None = None, groups=()) -> tuple[GrantRecord, str]:
        gid, token = new_token()
        rec = GrantRecord(gid, server, label, token_hash(token), policy, tuple(groups), _now(), None)
        self.r.hset(self.PREFIX + gid, mapping={
            "server": server, "label": label, "token_hash": rec.token_hash, "policy": policy or "",
            "groups": json.dumps(list(groups)), "created_at": rec.created_at, "revoked_at": "",
        })
        return rec, token

    def get(self, gid: str) -> GrantRecord | None:
        h = self.r.hgetall(self.PREFIX + gid)
        return _hash(gid, h) if h else None

    def list(self, server: str | None = None) -> list[GrantRecord]:
        out = []
        for key in self.r.scan_iter(match=self.PREFIX + "*", count=500):
            key = key.decode() if isinstance(key, bytes) else key
            rec = self.get(key[len(self.PREFIX):])
            if rec is not None and (server is None or rec.server == server):
                out.append(rec)
        return sorted(out, key=lambda g: (g.created_at, g.id))

    def revoke(self, gid: str) -> bool:
        key = self.PREFIX + gid
        if not self.r.exists(key):
            return False
        if not self.r.hget(key, "revoked_at"):
            self.r.hset(key, "revoked_at", _now())
        return True

    def ping(self) -> None:
        self.r.ping()

    def close(self) -> None:
        self.r.close()


def _hash(gid: str, h: dict) -> GrantRecord:
    d = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v) for k, v in h.items()}
    return GrantRecord(
        gid, d.get("server", ""), d.get("label", ""), d.get("token_hash", ""), d.get("policy") or None,
        tuple(json.loads(d.get("groups") or "[]")), d.get("created_at", ""), d.get("revoked_at") or None,
    )


def redis_client(url: str):
    """A synchronous client with short timeouts: a hung Redis must fail requests (closed), not hang them."""
    import redis

    return redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3, health_check_interval=30)


def open_grants(state_dir: str | Path, redis_url: str | None):
    return RedisGrants(redis_client(redis_url)) if redis_url else SQLiteGrants(state_dir)
