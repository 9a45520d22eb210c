"""The plugin registries: the seven built-in action kinds load at start-up with their schema fragments,
names are unique, invalid schemas and names fail when registered, and a kind the action-pack schema
offers without a plugin stops start-up."""

from __future__ import annotations

import pytest

from salesmesh.plugins.spec import (
    ActionConfigError,
    ActionKind,
    PluginError,
    PluginRegistries,
    UnknownPlugin,
    action_kinds,
    check_action_kinds,
)


def _noop(ctx: object, params: object) -> None:
    return None


def test_the_built_in_kinds_are_registered_once() -> None:
    registry = action_kinds()
    assert registry.names() == ["email", "escalate", "remind", "set_field", "survey_link", "task", "webhook"]
    assert action_kinds() is registry
    assert registry.get("webhook").external and not registry.get("remind").external
    with pytest.raises(UnknownPlugin, match="unknown action kind 'fax'"):
        registry.get("fax")


def test_params_are_checked_against_the_kind_fragment_with_pointers() -> None:
    remind = action_kinds().get("remind")
    assert remind.prepared({"message": {"en": "Hi", "zh": "你好"}}, "/steps/0/action/params")
    with pytest.raises(ActionConfigError) as caught:
        remind.prepared({"message": {"en": "Hi", "zh": "你好"}, "to": "boss"}, "/steps/0/action/params")
    assert caught.value.pointer == "/steps/0/action/params/to"


def test_duplicate_names_bad_names_and_bad_schemas_fail_at_registration() -> None:
    registries = PluginRegistries()
    registries.add_action_kind(
        ActionKind("fax", {"en": "Fax", "zh": "传真"}, {"type": "object"}, _noop), origin="a"
    )
    with pytest.raises(PluginError, match="registered twice"):
        registries.add_action_kind(
            ActionKind("fax", {"en": "Fax", "zh": "传真"}, {"type": "object"}, _noop), origin="b"
        )
    with pytest.raises(PluginError, match="lower-case"):
        ActionKind("Fax!", {"en": "Fax", "zh": "传真"}, {"type": "object"}, _noop)
    with pytest.raises(PluginError, match="invalid params schema"):
        ActionKind("fax2", {"en": "Fax", "zh": "传真"}, {"type": "nonsense"}, _noop)


def test_start_up_fails_when_an_offered_kind_has_no_plugin() -> None:
    registries = PluginRegistries()
    registries.add_action_kind(ActionKind("remind", {"en": "R", "zh": "R"}, {"type": "object"}, _noop))
    with pytest.raises(PluginError, match="have no plugin"):
        check_action_kinds(registries)
