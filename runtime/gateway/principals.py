"""Who is calling: the gateway's `Caller`, and the one function that turns an authenticated
user into the engine's principal.

A request is made by a *grant* (an mcpp grant token: `Grant::"g_…"`, its label and
configured groups) or by a *user* (an OAuth access token: `User::"<sub>"`, issuer-qualified
where a server trusts several issuers, with the claims the config maps as attributes and
groups from a groups claim). The engine's `User` principal (runtime/engine.py) is built by
`engine_principal` and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mcpp import Grant, User


@dataclass(frozen=True)
class Identity:
    """An access token, validated for one server: who it names and what the config maps."""

    issuer: str  # the `iss`, exactly
    issuer_name: str  # its [issuers.<name>]
    subject: str  # the `sub`
    user_id: str  # the principal id: subject prefix + sub
    client_id: str | None  # `client_id` or `azp`: which client the user authorised
    scopes: frozenset[str]
    groups: frozenset[str]
    attrs: dict  # attribute → typed value (oauth.map_claims)
    private: frozenset[str]  # attributes whose values are never logged
    subject_private: bool
    groups_private: bool
    expires_at: float | None  # epoch seconds: the token's exp (None: the issuer gave none)
    via: str  # jwt | introspection
    principal: User = field(init=False, compare=False, repr=False)  # engine_principal(self), built once

    def __post_init__(self):
        # one principal per validated token: the engine keeps it by identity
        object.__setattr__(self, "principal", engine_principal(self))

    def log_subject(self, pseudonym) -> str:
        """The subject as logs and the audit show it: itself, or a keyed hash when `sub` is
        a private claim (`pseudonym(text)` gives the same hash for the same subject)."""
        return pseudonym(self.user_id) if self.subject_private else self.user_id

    def public_attrs(self) -> dict:
        """The attributes whose values may be logged."""
        return {k: v for k, v in self.attrs.items() if k not in self.private}


def engine_principal(identity: Identity) -> User:
    """The engine's principal for an authenticated user. The one place user → principal:
    `User::"<id>"` with the mapped attributes and the groups claim; no grant id, so `scope
    grant` limits count per user, like `scope principal`."""
    return User(identity.user_id, identity.attrs, identity.groups, None)


def is_user_principal(principal) -> bool:
    return isinstance(principal, User)


def principal_key(principal) -> tuple:
    """What decides a principal's `tools/list`, as a cache key: a grant's id, label and
    groups; a user's id, attributes (its mapped claims, sets in order) and groups. Two
    tokens of one person with different claims are two keys."""
    if isinstance(principal, User):
        attrs = tuple(sorted((k, _frozen(v)) for k, v in principal.attrs.items()))
        return ("User", principal.id, attrs, frozenset(principal.groups))
    return ("Grant", principal.id, principal.label, frozenset(principal.groups))


def _frozen(v):
    if isinstance(v, (list, tuple, set, frozenset)):
        return ("set", tuple(sorted((_frozen(x) for x in v), key=repr)))
    if isinstance(v, dict):
        return ("map", tuple(sorted((k, _frozen(x)) for k, x in v.items())))
    return (type(v).__name__, v)


@dataclass
class Caller:
    """The caller of one request. `principal` is what the engine decides for: the grant, or
    `engine_principal(identity)`. `grant`/`record` are set for grant tokens, `identity` for
    OAuth tokens."""

    grant: Grant | None
    record: object | None  # GrantRecord, or None (anonymous server, OAuth user)
    identity: Identity | None = None
    shown: str | None = None  # a user as logs and people see it (the subject, or its pseudonym); set by the gateway
    principal: Grant | User = field(init=False)  # set by __post_init__

    def __post_init__(self) -> None:
        if self.grant is not None:
            self.principal = self.grant
        else:
            assert self.identity is not None, "a caller has a grant or an identity"
            self.principal = self.identity.principal

    @property
    def key(self) -> str:
        """What sessions are bound to: the grant id, or the user (issuer and subject; never a
        grant id, which has no NUL)."""
        if self.identity is not None:
            return f"user\0{self.identity.issuer}\0{self.identity.subject}"
        return self._grant.id

    @property
    def _grant(self) -> Grant:
        """The grant of a caller without an identity (a caller has one or the other)."""
        assert self.grant is not None, "a caller has a grant or an identity"
        return self.grant

    @property
    def grant_id(self) -> str:
        return self.grant.id if self.grant is not None else ""

    @property
    def grant_label(self) -> str:
        return self.grant.label if self.grant is not None else ""

    @property
    def actor_id(self) -> str:
        """Who asked, for records such as approvals: the grant id, or `user:<subject>`
        (the pseudonym when `sub` is private)."""
        if self.identity is not None:
            return f"user:{self.shown or self.identity.user_id}"
        return self._grant.id

    @property
    def actor(self) -> str:
        """Who asked, for a person to read: the grant's label (else id), or the user."""
        if self.identity is not None:
            return self.actor_id
        return self._grant.label or self._grant.id
