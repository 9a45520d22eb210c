"""Semantic checks of the process kinds: pipelines (stages, key nodes, exit criteria, transitions, mode,
lights), routing (channels, rule strategies, the high-grade condition, SLA), action packs (step offsets),
objection libraries, commission policies and engagement scoring.
"""

from __future__ import annotations

from typing import Any

from salesmesh.metamodel.conditions import condition_errors
from salesmesh.metamodel.semantics import (
    MAX_CONDITION_DEPTH,
    MAX_CONDITION_NODES,
    duplicates,
    err,
    not_allowed,
    unknown,
)
from salesmesh.metamodel.validation_errors import ValidationError

# --- pipeline ----------------------------------------------------------------------------------------


def check_pipeline(doc: dict[str, Any]) -> list[ValidationError]:
    """Check stages, key nodes, exit criteria, transitions, mode and light thresholds."""
    stages = doc["stages"]
    errors = duplicates(stages, "/stages")
    index = {s["key"]: i for i, s in reversed(list(enumerate(stages)))}
    outcomes = [s["outcome"] for s in stages]
    if "open" not in outcomes:
        errors.append(
            err("/stages", "A pipeline needs at least one open stage", "销售流程至少需要一个进行中的阶段")
        )
    if "won" not in outcomes:
        errors.append(
            err("/stages", "A pipeline needs at least one won stage", "销售流程至少需要一个赢单阶段")
        )
    node_at: dict[str, int] = {}
    for si, stage in enumerate(stages):
        path = f"/stages/{si}"
        if stage["outcome"] == "won" and stage["probability"] != 100:
            errors.append(
                err(path + "/probability", "A won stage has probability 100", "赢单阶段的赢率必须为 100")
            )
        if stage["outcome"] == "lost" and stage["probability"] != 0:
            errors.append(
                err(path + "/probability", "A lost stage has probability 0", "丢单阶段的赢率必须为 0")
            )
        for ni, node in enumerate(stage.get("key_nodes", [])):
            if node["key"] in node_at:
                errors.append(
                    err(
                        f"{path}/key_nodes/{ni}/key",
                        f"Duplicate key node '{node['key']}' (key nodes are unique in a pipeline)",
                        f"关键节点“{node['key']}”重复（关键节点在整个流程中必须唯一）",
                    )
                )
            else:
                node_at[node["key"]] = si
        for ki, name in enumerate(stage.get("exit_criteria", {}).get("required_key_nodes", [])):
            where = f"{path}/exit_criteria/required_key_nodes/{ki}"
            if name not in node_at:
                errors.append(
                    unknown(
                        where, name, "key node (of this or an earlier stage)", "关键节点（本阶段或之前阶段）"
                    )
                )
    initial = doc.get("initial_stage")
    if initial is not None:
        if initial not in index:
            errors.append(unknown("/initial_stage", initial, "stage", "阶段"))
        elif stages[index[initial]]["outcome"] != "open":
            errors.append(
                err("/initial_stage", "The initial stage must be an open stage", "初始阶段必须是进行中的阶段")
            )
    elif stages[0]["outcome"] != "open":
        errors.append(
            err(
                "/stages/0",
                "The first stage must be open (or set initial_stage)",
                "第一个阶段必须是进行中的阶段（或设置 initial_stage）",
            )
        )
    errors.extend(_check_transitions(doc, index))
    lights = doc.get("lights")
    if lights and lights["red_after_days"] <= lights["yellow_after_days"]:
        errors.append(
            err(
                "/lights/red_after_days",
                "red_after_days must be greater than yellow_after_days",
                "red_after_days（红灯天数）必须大于 yellow_after_days（黄灯天数）",
            )
        )
    return errors


def _check_transitions(doc: dict[str, Any], index: dict[str, int]) -> list[ValidationError]:
    errors: list[ValidationError] = []
    transitions = doc.get("transitions", [])
    seen: dict[tuple[str, str], int] = {}
    outgoing: set[str] = set()
    for ti, tr in enumerate(transitions):
        path = f"/transitions/{ti}"
        for end in ("from", "to"):
            if tr[end] not in index:
                errors.append(unknown(f"{path}/{end}", tr[end], "stage", "阶段"))
        if tr["from"] == tr["to"]:
            errors.append(
                err(path + "/to", "A transition must lead to another stage", "阶段流转必须指向另一个阶段")
            )
        pair = (tr["from"], tr["to"])
        if pair in seen:
            errors.append(
                err(
                    path,
                    f"Duplicate transition (already at /transitions/{seen[pair]})",
                    f"阶段流转重复（已在 /transitions/{seen[pair]} 定义）",
                )
            )
        seen.setdefault(pair, ti)
        outgoing.add(tr["from"])
    if doc["mode"] == "locked":
        if doc.get("allow_any"):
            errors.append(
                err(
                    "/allow_any",
                    "A locked pipeline cannot allow any transition",
                    "锁定模式的流程不能允许任意流转",
                )
            )
        if not transitions:
            errors.append(
                err(
                    "/transitions",
                    "A locked pipeline needs its allowed transitions",
                    "锁定模式的流程必须列出允许的阶段流转",
                )
            )
        else:
            for si, stage in enumerate(doc["stages"]):
                if stage["outcome"] == "open" and stage["key"] not in outgoing:
                    errors.append(
                        err(
                            f"/stages/{si}",
                            f"Open stage '{stage['key']}' has no transition out of it",
                            f"进行中的阶段“{stage['key']}”没有任何流出的流转",
                        )
                    )
    elif not doc.get("allow_any") and not transitions:
        errors.append(
            err(
                "/transitions",
                "Set allow_any or list the allowed transitions",
                "请设置 allow_any 或列出允许的阶段流转",
            )
        )
    return errors


# --- routing -----------------------------------------------------------------------------------------


def _check_assignment(item: dict[str, Any], path: str, channels: set[str]) -> list[ValidationError]:
    errors: list[ValidationError] = []
    if item["channel"] not in channels:
        errors.append(unknown(path + "/channel", item["channel"], "channel", "分配通道"))
    strategy = item["strategy"]
    if strategy == "pool" and "pool" not in item:
        errors.append(err(path + "/pool", "Strategy 'pool' needs a pool", "策略为“pool”时必须指定线索公海"))
    if strategy != "pool" and "pool" in item:
        errors.append(not_allowed(path + "/pool", "unless strategy is 'pool'", "策略不是“pool”时"))
    if strategy == "weighted" and "weights" not in item:
        errors.append(
            err(path + "/weights", "Strategy 'weighted' needs weights", "策略为“weighted”时必须设置权重")
        )
    for name in ("weights", "default_weight"):
        if strategy != "weighted" and name in item:
            errors.append(
                not_allowed(f"{path}/{name}", "unless strategy is 'weighted'", "策略不是“weighted”时")
            )
    return errors


def check_routing(doc: dict[str, Any]) -> list[ValidationError]:
    """Check channel and rule keys, rule → channel/pool/weights consistency, `high_grade` and the SLA."""
    errors = duplicates(doc["channels"], "/channels") + duplicates(doc["rules"], "/rules")
    channels = {c["key"] for c in doc["channels"]}
    for ri, rule in enumerate(doc["rules"]):
        errors.extend(_check_assignment(rule, f"/rules/{ri}", channels))
    errors.extend(_check_assignment(doc["fallback"], "/fallback", channels))
    if "high_grade" in doc:
        # Not a name every kind treats as a condition (semantics.CONDITION_KEYS), so checked here.
        problems = condition_errors(
            doc["high_grade"], "/high_grade", max_depth=MAX_CONDITION_DEPTH, max_nodes=MAX_CONDITION_NODES
        )
        errors.extend(err(p["path"], p["message"], p["message_zh"]) for p in problems)
    sla = doc.get("first_response_sla")
    if sla:
        if "escalate_to" in sla and sla["on_breach"] != "escalate":
            errors.append(
                not_allowed(
                    "/first_response_sla/escalate_to",
                    "unless on_breach is 'escalate'",
                    "超时处理不是“escalate”时",
                )
            )
        if "max_reassignments" in sla and sla["on_breach"] != "reassign":
            errors.append(
                not_allowed(
                    "/first_response_sla/max_reassignments",
                    "unless on_breach is 'reassign'",
                    "超时处理不是“reassign”时",
                )
            )
    return errors


# --- action pack -------------------------------------------------------------------------------------


def check_action_pack(doc: dict[str, Any]) -> list[ValidationError]:
    """Check step keys and offsets (one amount; step/field anchors that exist and come earlier)."""
    steps = doc["steps"]
    errors = duplicates(steps, "/steps")
    earlier: set[str] = set()
    for si, step in enumerate(steps):
        path = f"/steps/{si}/offset"
        offset = step["offset"]
        amounts = [k for k in ("after_hours", "after_minutes") if k in offset]
        if len(amounts) != 1:
            errors.append(
                err(
                    path,
                    "Give exactly one of after_hours or after_minutes",
                    "after_hours 与 after_minutes 必须且只能设置一个",
                )
            )
        relative = offset["relative_to"]
        if relative == "step":
            if "step" not in offset:
                errors.append(
                    err(
                        path + "/step",
                        "relative_to 'step' needs the step key",
                        "relative_to 为“step”时必须指定步骤",
                    )
                )
            elif offset["step"] not in earlier:
                errors.append(unknown(path + "/step", offset["step"], "earlier step", "前序步骤"))
        elif "step" in offset:
            errors.append(
                not_allowed(path + "/step", "unless relative_to is 'step'", "relative_to 不是“step”时")
            )
        if relative == "date_field":
            if "field" not in offset:
                errors.append(
                    err(
                        path + "/field",
                        "relative_to 'date_field' needs the field key",
                        "relative_to 为“date_field”时必须指定日期字段",
                    )
                )
        else:
            if "field" in offset:
                errors.append(
                    not_allowed(
                        path + "/field",
                        "unless relative_to is 'date_field'",
                        "relative_to 不是“date_field”时",
                    )
                )
            for name in amounts:
                if offset[name] < 0:
                    errors.append(
                        err(
                            f"{path}/{name}",
                            "Negative offsets are only allowed relative to a date field",
                            "只有相对日期字段时才允许负的偏移量",
                        )
                    )
        earlier.add(step["key"])
    return errors


# --- objection library -------------------------------------------------------------------------------


def check_objection_library(doc: dict[str, Any]) -> list[ValidationError]:
    """Check unique type and response keys and the approval deadline."""
    errors = duplicates(doc["types"], "/types")
    for ti, otype in enumerate(doc["types"]):
        errors.extend(duplicates(otype["responses"], f"/types/{ti}/responses"))
    if doc.get("custom_response_requires_approval") and "approval_deadline_hours" not in doc:
        errors.append(
            err(
                "/approval_deadline_hours",
                "Approval of custom responses needs a deadline",
                "自定义应对需要审批时必须设置审批时限",
            )
        )
    return errors


# --- commission policy -------------------------------------------------------------------------------


def check_commission_policy(doc: dict[str, Any]) -> list[ValidationError]:
    """Check unique rate entries and well-formed quality-coefficient steps."""
    rates = doc.get("rates", [])
    errors = duplicates(rates, "/rates")
    seen: dict[tuple[Any, Any], int] = {}
    for ri, rate in enumerate(rates):
        scope = (rate.get("product"), rate.get("stage"))
        if scope in seen:
            errors.append(
                err(
                    f"/rates/{ri}",
                    f"Same product and stage as /rates/{seen[scope]}",
                    f"产品和阶段与 /rates/{seen[scope]} 相同",
                )
            )
        seen.setdefault(scope, ri)
        if "product" in rate and "product_field" not in doc:
            errors.append(
                err(
                    f"/rates/{ri}/product",
                    "Product rates need product_field",
                    "按产品设置提成比例时必须指定 product_field",
                )
            )
    quality = doc.get("quality_coefficient")
    if quality:
        steps = quality["required_steps"]
        errors.extend(duplicates(steps, "/quality_coefficient/required_steps"))
        for si, step in enumerate(steps):
            path = f"/quality_coefficient/required_steps/{si}"
            if ("key_node" in step) == ("activity_type" in step):
                errors.append(
                    err(
                        path,
                        "Give exactly one of key_node or activity_type",
                        "key_node 与 activity_type 必须且只能设置一个",
                    )
                )
            if "min_count" in step and "activity_type" not in step:
                errors.append(
                    not_allowed(path + "/min_count", "without activity_type", "未设置 activity_type 时")
                )
    return errors


# --- scoring -----------------------------------------------------------------------------------------


def check_scoring(doc: dict[str, Any]) -> list[ValidationError]:
    """Check unique signal events and ordered thresholds."""
    errors = duplicates(doc["signals"], "/signals", "event")
    thresholds = doc["thresholds"]
    if thresholds["hot"] <= thresholds["warm"]:
        errors.append(err("/thresholds/hot", "hot must be greater than warm", "“热”的阈值必须大于“温”的阈值"))
    if "max_score" in doc and thresholds["hot"] > doc["max_score"]:
        errors.append(err("/thresholds/hot", "hot must not exceed max_score", "“热”的阈值不能超过最高分"))
    return errors
