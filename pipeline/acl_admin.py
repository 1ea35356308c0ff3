"""The cluster side of `lookthrough acl`: read ACLs and SCRAM users, apply a `pipeline.acl.Plan`.

`KafkaAccess(admin)` wraps confluent-kafka's AdminClient: `grants()` and `users()` describe the
cluster, `apply(plan, password)` creates users (SCRAM-SHA-512, password from the callback), adds
ACLs, removes ACLs, then deletes users, in that order, so a party never loses access it keeps.
Every admin-API failure becomes one ConfigError naming the operation (never a password).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from pipeline.acl import CLUSTER, Grant, Plan
from pipeline.errors import ConfigError

SCRAM_ITERATIONS = 8192
# librdkafka calls Kafka's CLUSTER resource type BROKER (both are type 4 on the wire).
_TO_KAFKA = {"TOPIC": ResourceType.TOPIC, "GROUP": ResourceType.GROUP,
             "TRANSACTIONAL_ID": ResourceType.TRANSACTIONAL_ID, CLUSTER: ResourceType.BROKER}  # fmt: skip
_FROM_KAFKA = {v: k for k, v in _TO_KAFKA.items()}


def to_binding(grant: Grant) -> AclBinding:
    return AclBinding(
        _TO_KAFKA[grant.resource_type], grant.name, ResourcePatternType[grant.pattern], grant.principal,
        grant.host, AclOperation[grant.operation], AclPermissionType[grant.permission],
    )  # fmt: skip


def to_filter(grant: Grant) -> AclBindingFilter:
    """A filter matching exactly this binding."""
    return AclBindingFilter(
        _TO_KAFKA[grant.resource_type], grant.name, ResourcePatternType[grant.pattern], grant.principal,
        grant.host, AclOperation[grant.operation], AclPermissionType[grant.permission],
    )  # fmt: skip


def _enum_name(value: Any) -> str:
    return str(value.name if hasattr(value, "name") else value)


def from_binding(binding: AclBinding) -> Grant | None:
    """The Grant for a binding; None for resource types this project never grants (e.g. DELEGATION_TOKEN)."""
    resource_type = next((name for kafka, name in _FROM_KAFKA.items() if binding.restype == kafka), None)
    if resource_type is None:
        return None
    return Grant(binding.principal, resource_type, _enum_name(binding.resource_pattern_type), binding.name,
                 _enum_name(binding.operation), _enum_name(binding.permission_type), binding.host)  # fmt: skip


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KafkaException) and exc.args:
        error = exc.args[0]
        return f"{error.name()}: {error.str()}" if hasattr(error, "name") else str(error)
    return f"{type(exc).__name__}: {exc}"


def _result(future: Future[Any], what: str, timeout: float) -> Any:
    try:
        return future.result(timeout=timeout)
    except Exception as exc:  # KafkaException, TimeoutError: one readable message either way
        raise ConfigError(f"{what} failed: {_reason(exc)}") from None


class KafkaAccess:
    def __init__(self, admin: AdminClient, timeout: float = 30.0) -> None:
        self.admin = admin
        self.timeout = timeout

    def grants(self) -> set[Grant]:
        """Every ACL binding on the cluster."""
        # None matches any name, principal and host (the stubs say str).
        everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,  # type: ignore[arg-type]
                                      AclOperation.ANY, AclPermissionType.ANY)  # fmt: skip
        bindings = _result(self.admin.describe_acls(everything, request_timeout=self.timeout),
                           "describing ACLs (is the authorizer enabled, and may this principal ALTER the cluster?)",
                           self.timeout)  # fmt: skip
        return {g for g in (from_binding(b) for b in bindings) if g is not None}

    def topics(self) -> set[str]:
        """Topic names this principal may see."""
        try:
            return set(self.admin.list_topics(timeout=self.timeout).topics)
        except KafkaException as exc:
            raise ConfigError(f"listing topics failed: {_reason(exc)}") from None

    def users(self) -> set[str]:
        """Users holding a SCRAM-SHA-512 credential."""
        future = self.admin.describe_user_scram_credentials(request_timeout=self.timeout)
        assert isinstance(future, Future)  # one future when no users are named
        described = _result(future, "describing SCRAM users", self.timeout)
        return {
            user for user, description in described.items()
            if any(info.mechanism == ScramMechanism.SCRAM_SHA_512 for info in description.scram_credential_infos)
        }  # fmt: skip

    def upsert_users(self, users: Iterable[str], password: Callable[[str], str]) -> None:
        """Create or replace each user's SCRAM-SHA-512 credential with `password(user)`."""
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
        alterations: list[UserScramCredentialAlteration] = [
            UserScramCredentialUpsertion(user, info, password(user).encode()) for user in users
        ]
        if alterations:
            futures = self.admin.alter_user_scram_credentials(alterations, request_timeout=self.timeout)
            for user, future in futures.items():
                _result(future, f"setting the SCRAM credential of {user}", self.timeout)

    def delete_users(self, users: Iterable[str]) -> None:
        deletions: list[UserScramCredentialAlteration] = [
            UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_512) for user in users
        ]
        if deletions:
            futures = self.admin.alter_user_scram_credentials(deletions, request_timeout=self.timeout)
            for user, future in futures.items():
                _result(future, f"deleting the SCRAM credential of {user}", self.timeout)

    def add_grants(self, grants: Iterable[Grant]) -> None:
        bindings = [to_binding(g) for g in grants]
        if bindings:
            for binding, future in self.admin.create_acls(bindings, request_timeout=self.timeout).items():
                _result(future, f"creating ACL {binding}", self.timeout)

    def remove_grants(self, grants: Iterable[Grant]) -> None:
        filters = [to_filter(g) for g in grants]
        if filters:
            for acl_filter, future in self.admin.delete_acls(filters, request_timeout=self.timeout).items():
                _result(future, f"deleting ACL {acl_filter}", self.timeout)

    def apply(self, plan: Plan, password: Callable[[str], str],
              create_topics: Callable[[Iterable[str]], None] | None = None) -> None:  # fmt: skip
        """Topics and users first, then new ACLs, then revocations, then users that are gone."""
        if plan.add_topics and create_topics is not None:
            create_topics(plan.add_topics)
        self.upsert_users(plan.add_users, password)
        self.add_grants(plan.add_grants)
        self.remove_grants(plan.remove_grants)
        self.delete_users(plan.remove_users)
