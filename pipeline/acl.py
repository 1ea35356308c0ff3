"""Who may do what on Kafka: principals and ACLs derived from reference data, and the plan to get there.

Input: `ReferenceData` (brokers, subscribers), the topic names, the exchange list and a time.
Output: `desired(...)` → `Desired` (SCRAM users, ACL grants); `diff(desired, current)` → `Plan`,
the users and grants to add and remove. Pure: the admin-API side is `pipeline.acl_admin`.
Errors: ConfigError when two parties' prefixed grants would overlap.

The model (see the README's security section): one principal per reporter (writes its own
ingress topic, reads its own feedback topic), one per exchange (reads its own exchange topic
while it has a licensed subscriber within validity, the same rule routing uses), the
pipeline's own principal, and an operator. Only principals named with `Principals.prefix`
are managed: ACLs and users of anyone else are never touched.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from pipeline.config import TopicNames
from pipeline.errors import ConfigError
from pipeline.refdata import ReferenceData

# Resource types, pattern types and operations as Kafka names them.
TOPIC, GROUP, TRANSACTIONAL_ID, CLUSTER = "TOPIC", "GROUP", "TRANSACTIONAL_ID", "CLUSTER"
LITERAL, PREFIXED = "LITERAL", "PREFIXED"
CLUSTER_NAME = "kafka-cluster"
SEND_TRANSACTIONAL_PREFIX = "lt-send."  # pipeline.send: lt-send.<reporter>.<random>
EXCHANGE_GROUP_PREFIX = "exchange-"  # pipeline.commands.subscribe: exchange-<X>
FEEDBACK_GROUP_PREFIX = "feedback-"
# Consumers of the worker that assign partitions and never commit (refstore, sharing).
PIPELINE_AUX_GROUPS = ("lookthrough-ref-follower", "lookthrough-sharing-follower")


@dataclass(frozen=True, order=True)
class Grant:
    """One ALLOW ACL binding: `principal` may `operation` on the resource (any host)."""

    principal: str  # "User:<name>"
    resource_type: str
    pattern: str
    name: str
    operation: str
    permission: str = "ALLOW"
    host: str = "*"

    @property
    def user(self) -> str:
        return self.principal.removeprefix("User:")

    def text(self) -> str:
        where = f"{self.resource_type} {self.pattern.lower()} {self.name!r}"
        extra = "" if (self.permission, self.host) == ("ALLOW", "*") else f" ({self.permission} from {self.host})"
        return f"{self.user}: {self.operation} on {where}{extra}"


@dataclass(frozen=True)
class Principals:
    """User names of the managed principals; `prefix` marks what `acl apply` may change."""

    prefix: str = "lt-"

    def reporter(self, reporter_id: str) -> str:
        return f"{self.prefix}reporter-{reporter_id}"

    def exchange(self, exchange: str) -> str:
        return f"{self.prefix}exchange-{exchange}"

    @property
    def pipeline(self) -> str:
        return f"{self.prefix}pipeline"

    @property
    def operator(self) -> str:
        return f"{self.prefix}operator"

    @property
    def store(self) -> str:
        return f"{self.prefix}store"

    def managed(self, user: str) -> bool:
        return user.startswith(self.prefix)


@dataclass(frozen=True)
class Desired:
    users: dict[str, str]  # user → role description
    grants: frozenset[Grant]
    licensed: frozenset[str] = frozenset()
    topics: frozenset[str] = frozenset()  # the parties' own topics, which must exist for them to work


@dataclass(frozen=True)
class Plan:
    add_users: tuple[str, ...] = ()
    remove_users: tuple[str, ...] = ()
    add_grants: tuple[Grant, ...] = ()
    remove_grants: tuple[Grant, ...] = ()
    add_topics: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.add_users or self.remove_users or self.add_grants or self.remove_grants or self.add_topics)

    def lines(self) -> list[str]:
        out = [f"+ topic {t}" for t in self.add_topics]
        out += [f"+ user {u}" for u in self.add_users]
        out += [f"+ allow {g.text()}" for g in self.add_grants]
        out += [f"- allow {g.text()}" for g in self.remove_grants]
        out += [f"- user {u}" for u in self.remove_users]
        return out

    def as_json(self) -> str:
        def grant(g: Grant) -> dict[str, str]:
            return {"principal": g.principal, "resource_type": g.resource_type, "pattern": g.pattern,
                    "name": g.name, "operation": g.operation, "permission": g.permission, "host": g.host}  # fmt: skip

        return json.dumps({
            "add_topics": list(self.add_topics),
            "add_users": list(self.add_users), "remove_users": list(self.remove_users),
            "add_grants": [grant(g) for g in self.add_grants], "remove_grants": [grant(g) for g in self.remove_grants],
        }, indent=1)  # fmt: skip


def _grants(user: str, resource_type: str, pattern: str, name: str, *operations: str) -> set[Grant]:
    return {Grant(f"User:{user}", resource_type, pattern, name, op) for op in operations}


def reporter_grants(user: str, reporter_id: str, topics: TopicNames) -> set[Grant]:
    """Write its own ingress topic (and read it back, for `send`'s resume), read its own feedback."""
    send_prefix = f"{SEND_TRANSACTIONAL_PREFIX}{reporter_id}."
    grants = _grants(user, TOPIC, LITERAL, topics.ingress(reporter_id), "WRITE", "READ")
    grants |= _grants(user, TOPIC, LITERAL, topics.feedback(reporter_id), "READ")
    grants |= _group_grants(user, FEEDBACK_GROUP_PREFIX + reporter_id)
    grants |= _grants(user, TRANSACTIONAL_ID, PREFIXED, send_prefix, "WRITE", "DESCRIBE")
    # librdkafka looks up the coordinator of a consumer's group even when it only assigns partitions,
    # so `send`'s read-back consumer needs a group of its own: lt-send.<reporter>.<anything>.
    grants |= _grants(user, GROUP, PREFIXED, send_prefix, "READ")
    grants |= _grants(user, CLUSTER, LITERAL, CLUSTER_NAME, "IDEMPOTENT_WRITE")  # implied by WRITE since Kafka 3.0
    return grants


def exchange_grants(user: str, exchange: str, topics: TopicNames) -> set[Grant]:
    """Read its own exchange topic, as its own consumer groups only."""
    grants = _grants(user, TOPIC, LITERAL, topics.exchange(exchange), "READ")
    return grants | _group_grants(user, EXCHANGE_GROUP_PREFIX + exchange)


def _group_grants(user: str, group: str) -> set[Grant]:
    # The group itself, plus `<group>.<anything>`: the separator keeps `exchange-SH` from covering `exchange-SHFE`.
    return _grants(user, GROUP, LITERAL, group, "READ") | _grants(user, GROUP, PREFIXED, group + ".", "READ")


def pipeline_grants(user: str, topics: TopicNames, group: str) -> set[Grant]:
    """What `lookthrough run` needs: read ingress and reference data, write every output, its transactions."""
    grants = _grants(user, TOPIC, PREFIXED, topics.ingress_prefix, "READ")
    grants |= _grants(user, TOPIC, PREFIXED, topics.ref_prefix, "READ", "CREATE")
    for prefix in (topics.feedback_prefix, topics.exchange_prefix):
        grants |= _grants(user, TOPIC, PREFIXED, prefix, "WRITE", "CREATE")
    for name in (topics.reports, topics.dlq):
        grants |= _grants(user, TOPIC, LITERAL, name, "WRITE", "CREATE")
    grants |= _grants(user, TOPIC, LITERAL, topics.sharing_state, "READ", "WRITE", "CREATE")
    for name in (group, *PIPELINE_AUX_GROUPS):
        grants |= _grants(user, GROUP, LITERAL, name, "READ")
    grants |= _grants(user, TRANSACTIONAL_ID, PREFIXED, f"{group}-", "WRITE", "DESCRIBE")
    return grants | _grants(user, CLUSTER, LITERAL, CLUSTER_NAME, "IDEMPOTENT_WRITE")


def store_grants(user: str, topics: TopicNames, group: str) -> set[Grant]:
    """What `lookthrough store sink` needs: read the outputs it stores, as its own consumer group."""
    grants = _grants(user, TOPIC, LITERAL, topics.reports, "READ")
    grants |= _grants(user, TOPIC, LITERAL, topics.dlq, "READ")
    grants |= _grants(user, TOPIC, LITERAL, topics.ref("subscribers"), "READ")
    grants |= _grants(user, TOPIC, PREFIXED, topics.exchange_prefix, "READ")
    return grants | _grants(user, GROUP, LITERAL, group, "READ")


def operator_grants(user: str) -> set[Grant]:
    """Everything: topics and reference data, ACLs and SCRAM users (cluster ALTER), reading any output."""
    grants = _grants(user, CLUSTER, LITERAL, CLUSTER_NAME, "ALL")
    for resource_type in (TOPIC, GROUP, TRANSACTIONAL_ID):
        grants |= _grants(user, resource_type, LITERAL, "*", "ALL")
    return grants


def reporters(ref: ReferenceData, exchange_reporters: Iterable[str]) -> list[str]:
    """Futures companies from `brokers`, plus the exchanges that report for their non-futures-company members."""
    ids = {b["broker_id"] for b in ref.brokers.values() if b.get("kind") == "FUTURES_COMPANY"}
    return sorted(ids | set(exchange_reporters))


def desired(
    ref: ReferenceData,
    topics: TopicNames,
    *,
    group: str,
    store_group: str | None = None,
    exchanges: Iterable[str],
    exchange_reporters: Iterable[str],
    now_ms: int,
    principals: Principals | None = None,
) -> Desired:
    """Users and grants the reference data calls for at `now_ms`; the store sink's group defaults to `<group>.store`."""
    names = principals or Principals()
    users: dict[str, str] = {names.operator: "operator", names.pipeline: "pipeline", names.store: "store sink"}
    topic_names: set[str] = set()
    grants = operator_grants(names.operator) | pipeline_grants(names.pipeline, topics, group)
    grants |= store_grants(names.store, topics, store_group or f"{group}.store")
    for reporter_id in reporters(ref, exchange_reporters):
        user = names.reporter(reporter_id)
        users[user] = f"reporter {reporter_id}"
        grants |= reporter_grants(user, reporter_id, topics)
        topic_names |= {topics.ingress(reporter_id), topics.feedback(reporter_id)}
    licensed = ref.licensed_exchanges(now_ms)
    known = set(exchanges) | {s["exchange"] for s in ref.subscribers.values()}
    for exchange in sorted(known):
        user = names.exchange(exchange)
        topic_names.add(topics.exchange(exchange))
        users[user] = f"exchange {exchange}" + ("" if exchange in licensed else " (no licensed subscriber: no access)")
        if exchange in licensed:
            grants |= exchange_grants(user, exchange, topics)
    check_isolation(grants, {names.operator, names.pipeline, names.store})
    return Desired(users, frozenset(grants), frozenset(licensed), frozenset(topic_names))


def check_isolation(grants: Iterable[Grant], trusted: set[str]) -> None:
    """ConfigError when one party's prefixed grant covers a resource granted to another party.

    Reporter IDs may contain '.', so reporter `01` (prefix `lt-send.01.`) would cover the
    transactional IDs of reporter `01.x`; such a pair must not both exist.
    """
    parties = [g for g in grants if g.user not in trusted and g.resource_type != CLUSTER]
    for prefixed in (g for g in parties if g.pattern == PREFIXED):
        for other in parties:
            if (other.user != prefixed.user and other.resource_type == prefixed.resource_type
                    and other.name.startswith(prefixed.name)):  # fmt: skip
                raise ConfigError(
                    f"{prefixed.user}'s {prefixed.resource_type} prefix {prefixed.name!r} covers "
                    f"{other.user}'s {other.name!r}; rename one of the two parties"
                )


def diff(
    want: Desired,
    current_users: Iterable[str],
    current_grants: Iterable[Grant],
    principals: Principals | None = None,
    current_topics: Iterable[str] | None = None,
) -> Plan:
    """What to add and remove so the cluster matches `want`; unmanaged users and ACLs are left alone.

    With `current_topics`, the parties' missing topics are added too (topics are never removed here)."""
    names = principals or Principals()
    have_users = set(current_users)
    have_grants = set(current_grants)
    managed_grants = {g for g in have_grants if names.managed(g.user)}
    return Plan(
        add_users=tuple(sorted(set(want.users) - have_users)),
        remove_users=tuple(sorted(u for u in have_users - set(want.users) if names.managed(u))),
        add_grants=tuple(sorted(want.grants - have_grants)),
        remove_grants=tuple(sorted(managed_grants - want.grants)),
        add_topics=() if current_topics is None else tuple(sorted(want.topics - set(current_topics))),
    )
