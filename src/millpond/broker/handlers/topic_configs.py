"""How topic and broker configs are reported (shared by CreateTopics and DescribeConfigs)."""

from __future__ import annotations

from typing import Any

from millpond.config import BROKER_KEYS
from millpond.config import GROUP_KEYS
from millpond.config import TOPIC_KEYS
from millpond.config import BrokerConfig
from millpond.storage.log_manager import Topic

# DescribeConfigs ConfigSource values.
DYNAMIC_TOPIC_CONFIG = 1
STATIC_BROKER_CONFIG = 4
DEFAULT_CONFIG = 5
DYNAMIC_GROUP_CONFIG = 8


def render(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def broker_source(config: BrokerConfig, broker_key: str) -> int:
    return STATIC_BROKER_CONFIG if broker_key in config.overrides else DEFAULT_CONFIG


def topic_config_entries(
    config: BrokerConfig, topic: Topic, names: set[str] | None, *, synonyms: bool = False
) -> list[dict[str, Any]]:
    entries = []
    for name, key in TOPIC_KEYS.items():
        if names is not None and name not in names:
            continue
        if key.broker_default is None:
            broker_value, broker_origin = key.default, DEFAULT_CONFIG
        else:
            broker_value = render(config[key.broker_default])
            broker_origin = broker_source(config, key.broker_default)
        overridden = name in topic.configs
        value = render(key.parse_value(topic.configs[name])) if overridden else broker_value
        synonym_list = []
        if synonyms:
            if overridden:
                synonym_list.append({"name": name, "value": value, "source": DYNAMIC_TOPIC_CONFIG})
            if key.broker_default is not None:
                synonym_list.append(
                    {"name": key.broker_default, "value": broker_value, "source": broker_origin}
                )
        entries.append(
            {
                "name": name,
                "value": value,
                "read_only": False,
                "is_default": not overridden,
                "config_source": DYNAMIC_TOPIC_CONFIG if overridden else broker_origin,
                "is_sensitive": False,
                "synonyms": synonym_list,
                "config_type": key.config_type,
                "documentation": key.doc,
            }
        )
    return entries


def broker_config_entries(
    config: BrokerConfig, names: set[str] | None, *, synonyms: bool = False
) -> list[dict[str, Any]]:
    entries = []
    for name, key in BROKER_KEYS.items():
        if names is not None and name not in names:
            continue
        value = render(config[name])
        source = broker_source(config, name)
        entries.append(
            {
                "name": name,
                "value": value,
                "read_only": True,
                "is_default": source == DEFAULT_CONFIG,
                "config_source": source,
                "is_sensitive": False,
                "synonyms": [{"name": name, "value": value, "source": source}] if synonyms else [],
                "config_type": key.config_type,
                "documentation": key.doc,
            }
        )
    return entries


def group_config_entries(
    config: BrokerConfig,
    group_id: str,
    overrides: dict[str, str],
    names: set[str] | None,
    *,
    synonyms: bool = False,
) -> list[dict[str, Any]]:
    """A share group's configs: its overrides, else the broker's group.share.* defaults."""
    entries = []
    for name, key in GROUP_KEYS.items():
        if names is not None and name not in names:
            continue
        if key.broker_default is not None:
            default_value = render(config[key.broker_default])
            default_origin = broker_source(config, key.broker_default)
        elif name == "errors.deadletterqueue.topic.name":
            default_value, default_origin = f"dlq.{group_id}", DEFAULT_CONFIG
        else:
            default_value, default_origin = key.default, DEFAULT_CONFIG
        overridden = name in overrides
        value = overrides[name] if overridden else default_value
        synonym_list = []
        if synonyms:
            if overridden:
                synonym_list.append({"name": name, "value": value, "source": DYNAMIC_GROUP_CONFIG})
            if key.broker_default is not None:
                synonym_list.append(
                    {"name": key.broker_default, "value": default_value, "source": default_origin}
                )
        entries.append(
            {
                "name": name,
                "value": value,
                "read_only": False,
                "is_default": not overridden,
                "config_source": DYNAMIC_GROUP_CONFIG if overridden else default_origin,
                "is_sensitive": False,
                "synonyms": synonym_list,
                "config_type": key.config_type,
                "documentation": key.doc,
            }
        )
    return entries
