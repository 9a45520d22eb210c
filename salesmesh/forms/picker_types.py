"""The built-in field types whose value is picked rather than typed — select, multi_select, boolean,
reference and file — plus the display-only heading. `field_types` registers them with the others; the
stored shapes are described there.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

from salesmesh.forms.fields import BindContext, FieldInvalid, FieldSpec, FieldType, raw_text, x_message

# --- choices ---------------------------------------------------------------------------------------


class SelectType(FieldType):
    name = "select"
    macro = "select_input"

    def control_attributes(self, spec: FieldSpec) -> dict[str, Any]:
        return {}

    def schema(self, spec: FieldSpec) -> dict[str, Any]:
        return {
            "type": "string",
            "enum": [value for value, _ in spec.options],
            "x-messages": {"enum": x_message("Choose one of the listed options", "请从列出的选项中选择")},
        }

    def convert(self, raw: Any, spec: FieldSpec, ctx: BindContext) -> Any:
        return raw_text(raw, ctx)

    def display(self, value: Any, spec: FieldSpec, locale: str, tz: tzinfo) -> str:
        found = spec.option_label(value)
        return str(found.get(locale) or found.get("en")) if found else str(value)


class MultiSelectType(FieldType):
    name = "multi_select"
    macro = "checkbox_group"
    multiple = True

    def control_attributes(self, spec: FieldSpec) -> dict[str, Any]:
        return {}  # the id names the <fieldset>; each option is its own checkbox

    def schema(self, spec: FieldSpec) -> dict[str, Any]:
        frag: dict[str, Any] = {
            "type": "array",
            "uniqueItems": True,
            "items": {
                "type": "string",
                "enum": [value for value, _ in spec.options],
                "x-messages": {"enum": x_message("Choose from the listed options", "请从列出的选项中选择")},
            },
        }
        frag["maxItems"] = spec.max_selected or len(spec.options)
        frag["x-messages"] = {
            "maxItems": x_message(f"Choose at most {frag['maxItems']}", f"最多选择 {frag['maxItems']} 项")
        }
        return frag

    def convert(self, raw: Any, spec: FieldSpec, ctx: BindContext) -> Any:
        if raw is None:
            return None
        if isinstance(raw, str) and ctx.source == "form":
            raw = [raw]
        if not isinstance(raw, list | tuple) or not all(isinstance(v, str) for v in raw):
            raise FieldInvalid("Must be a list of option values", "必须是由选项值组成的列表")
        chosen: list[str] = []
        for item in raw:
            value = item.strip()
            if value and value not in chosen:
                chosen.append(value)
        return chosen or None

    def input_value(self, value: Any, spec: FieldSpec, tz: tzinfo) -> Any:
        return list(value) if isinstance(value, list | tuple) else []

    def display(self, value: Any, spec: FieldSpec, locale: str, tz: tzinfo) -> str:
        items = value if isinstance(value, list | tuple) else [value]
        names = []
        for item in items:
            found = spec.option_label(item)
            names.append(str(found.get(locale) or found.get("en")) if found else str(item))
        return ("、" if locale == "zh" else ", ").join(names)


_TRUE = frozenset({"on", "true", "1", "yes", "y"})
_FALSE = frozenset({"off", "false", "0", "no", "n", ""})


class BooleanType(FieldType):
    name = "boolean"
    macro = "checkbox"

    def control_attributes(self, spec: FieldSpec) -> dict[str, Any]:
        return {"type": "checkbox", "value": "true"}

    def schema(self, spec: FieldSpec) -> dict[str, Any]:
        return {"type": "boolean"}

    def convert(self, raw: Any, spec: FieldSpec, ctx: BindContext) -> Any:
        if isinstance(raw, bool):
            return raw
        if ctx.source == "json":
            if raw is None:
                return None
            raise FieldInvalid("Must be true or false", "必须是 true 或 false")
        if isinstance(raw, list | tuple):
            raw = raw[-1] if raw else None
        if raw is None:
            return False  # an unchecked checkbox sends nothing
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise FieldInvalid("Must be yes or no", "必须为是或否")

    def input_value(self, value: Any, spec: FieldSpec, tz: tzinfo) -> Any:
        return value is True or (isinstance(value, str) and value.strip().lower() in _TRUE)

    def display(self, value: Any, spec: FieldSpec, locale: str, tz: tzinfo) -> str:
        if locale == "zh":
            return "是" if value else "否"
        return "Yes" if value else "No"


# --- references and files -------------------------------------------------------------------------

REFERENCE_NAMES = {
    "customer": ("customer", "客户"),
    "contact": ("contact", "联系人"),
    "user": ("user", "用户"),
    "lead": ("lead", "线索"),
    "deal": ("deal", "商机"),
}


class ReferenceType(FieldType):
    name = "reference"
    macro = "reference_input"
    input_mode = "numeric"

    def schema(self, spec: FieldSpec) -> dict[str, Any]:
        return {"type": "integer", "minimum": 1}

    def convert(self, raw: Any, spec: FieldSpec, ctx: BindContext) -> Any:
        if isinstance(raw, int) and not isinstance(raw, bool):
            value = raw
        elif ctx.source == "form":
            text = raw_text(raw, ctx)
            if text is None:
                return None
            if not text.isdigit() or not text.isascii() or len(text) > 18:
                raise FieldInvalid("Choose a record from the list", "请从列表中选择记录")
            value = int(text)
        elif raw is None:
            return None
        else:
            raise FieldInvalid("Must be the id of a record", "必须是记录的 ID")
        if value < 1:
            raise FieldInvalid("Must be the id of a record", "必须是记录的 ID")
        return value

    def check(self, value: Any, spec: FieldSpec, ctx: BindContext) -> None:
        if ctx.resolver is not None and not ctx.resolver(spec, value):
            target = (spec.reference or {}).get("target", "")
            en, zh = REFERENCE_NAMES.get(target, (target, target))
            raise FieldInvalid(f"No such {en} (#{value})", f"{zh}（#{value}）不存在")

    def input_value(self, value: Any, spec: FieldSpec, tz: tzinfo) -> Any:
        return "" if value is None else str(value)

    def display(self, value: Any, spec: FieldSpec, locale: str, tz: tzinfo) -> str:
        return f"#{value}"


class FileType(FieldType):
    name = "file"
    macro = "file_input"
    multiple = True
    uploads = True

    def control_attributes(self, spec: FieldSpec) -> dict[str, Any]:
        limits = spec.file or {}
        accept = ",".join("." + t for t in limits.get("allowed_types", []))
        return {"type": "file", "accept": accept, "multiple": limits.get("max_files", 1) > 1}

    def schema(self, spec: FieldSpec) -> dict[str, Any]:
        from salesmesh.forms.files import descriptor_schema

        limits = spec.file or {}
        return {
            "type": "array",
            "maxItems": limits.get("max_files", 1),
            "items": descriptor_schema(limits),
            "x-messages": {
                "maxItems": x_message(
                    f"Attach at most {limits.get('max_files', 1)} file(s)",
                    f"最多上传 {limits.get('max_files', 1)} 个文件",
                )
            },
        }

    def convert(self, raw: Any, spec: FieldSpec, ctx: BindContext) -> Any:
        from salesmesh.forms.files import convert_files

        return convert_files(raw, spec, ctx)

    def input_value(self, value: Any, spec: FieldSpec, tz: tzinfo) -> Any:
        return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []

    def display(self, value: Any, spec: FieldSpec, locale: str, tz: tzinfo) -> str:
        items = value if isinstance(value, list) else [value]
        names = [str(v.get("name", "")) if isinstance(v, dict) else str(v) for v in items]
        return ("、" if locale == "zh" else ", ").join(names)


class HeadingType(FieldType):
    name = "heading"
    macro = "heading"
    takes_input = False

    def control_attributes(self, spec: FieldSpec) -> dict[str, Any]:
        return {}

    def schema(self, spec: FieldSpec) -> dict[str, Any] | None:
        return None

    def convert(self, raw: Any, spec: FieldSpec, ctx: BindContext) -> Any:
        return None
