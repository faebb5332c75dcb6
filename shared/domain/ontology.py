"""Ontology class model and its validation rules."""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,99}$")
DATABASE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")

SCALAR_TYPES = frozenset({"string", "integer", "decimal", "boolean", "date", "datetime"})
# Aliases a user may write for the scalar types (XSD names as TerminusDB spells them).
TYPE_ALIASES = {
    "str": "string", "text": "string", "xsd:string": "string",
    "int": "integer", "xsd:integer": "integer", "long": "integer",
    "float": "decimal", "double": "decimal", "number": "decimal", "xsd:decimal": "decimal",
    "bool": "boolean", "xsd:boolean": "boolean",
    "xsd:date": "date", "xsd:dateTime": "datetime", "xsd:datetime": "datetime",
}
CARDINALITIES = frozenset({"one", "many", "1:1", "1:n", "n:1", "n:m"})

Label = str | dict[str, str]


def _check_label(value: Label | None) -> Label | None:
    if isinstance(value, dict):
        if not value:
            raise ValueError("a label map needs at least one language")
        for lang, text in value.items():
            if not re.fullmatch(r"[a-z]{2}(-[A-Za-z]{2})?", lang):
                raise ValueError(f"label language {lang!r} is not a language code such as 'en' or 'ko'")
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"label for {lang!r} must be a non-empty string")
    elif isinstance(value, str) and not value.strip():
        raise ValueError("label must not be empty")
    return value


CheckedLabel = Annotated[Label | None, AfterValidator(_check_label)]


def check_identifier(value: str, what: str) -> str:
    if not IDENTIFIER.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} is not valid: start with a letter, then letters, digits or '_' (at most 100)"
        )
    return value


def check_database_name(value: str) -> str:
    if not DATABASE_NAME.fullmatch(value):
        raise ValueError(
            f"database name {value!r} is not valid: lower-case letter first, then a-z, 0-9, '_' or '-' "
            "(at most 63)"
        )
    return value


_TYPE_NAMES: list[JsonValue] = list(sorted(SCALAR_TYPES | {"link"}))
_CARDINALITY_NAMES: list[JsonValue] = list(sorted(CARDINALITIES))


def _identifier() -> Any:
    """For the JSON schema only (OpenAPI): the validators below check the same, with clearer messages."""
    return Field(json_schema_extra={"pattern": IDENTIFIER.pattern})


class Property(BaseModel):
    """One property of a class; `type` is a scalar type or `link` (with `target`) to another class."""

    model_config = ConfigDict(extra="forbid")

    name: str = _identifier()
    type: str = Field(json_schema_extra={"examples": _TYPE_NAMES})
    label: CheckedLabel = None
    description: str | None = None
    required: bool = False
    default: Any = None
    constraints: dict[str, Any] = Field(default_factory=dict)
    target: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_identifier(v, "property name")

    @model_validator(mode="after")
    def _type(self) -> Property:
        raw = self.type.strip()
        target = self.target or self.constraints.get("target") or self.constraints.get("linkTarget")
        if raw.startswith("link:") or raw.startswith("link<"):
            target = raw.split(":", 1)[1] if ":" in raw else raw[5:].rstrip(">")
            raw = "link"
        normal = TYPE_ALIASES.get(raw, raw)
        if normal == "link":
            if not target:
                raise ValueError(f"property {self.name!r} is a link but names no target class ('target')")
            self.target = check_identifier(str(target), "link target class")
        elif normal not in SCALAR_TYPES:
            allowed = ", ".join(sorted(SCALAR_TYPES | {"link"}))
            raise ValueError(f"property {self.name!r} has unknown type {self.type!r}; allowed: {allowed}")
        self.type = normal
        return self


class Relationship(BaseModel):
    """A named relation from this class to a target class."""

    model_config = ConfigDict(extra="forbid")

    predicate: str = _identifier()
    target: str = _identifier()
    label: CheckedLabel = None
    cardinality: str = Field("n:1", json_schema_extra={"enum": _CARDINALITY_NAMES})
    description: str | None = None

    @field_validator("predicate")
    @classmethod
    def _predicate(cls, v: str) -> str:
        return check_identifier(v, "relationship predicate")

    @field_validator("target")
    @classmethod
    def _target(cls, v: str) -> str:
        return check_identifier(v, "relationship target class")

    @field_validator("cardinality")
    @classmethod
    def _cardinality(cls, v: str) -> str:
        if v not in CARDINALITIES:
            raise ValueError(f"cardinality {v!r} is not one of {', '.join(sorted(CARDINALITIES))}")
        return v


class OntologyClass(BaseModel):
    """An ontology class as a user defines it (the body of create and update commands)."""

    model_config = ConfigDict(extra="forbid")

    id: str = _identifier()
    label: CheckedLabel = None
    description: str | None = None
    parent_class: str | None = Field(None, json_schema_extra={"pattern": IDENTIFIER.pattern})
    abstract: bool = False
    properties: list[Property] = Field(default_factory=list)
    relationships: list[Relationship] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return check_identifier(v, "class id")

    @field_validator("parent_class")
    @classmethod
    def _parent(cls, v: str | None) -> str | None:
        return None if v in (None, "") else check_identifier(v, "parent class")

    @model_validator(mode="after")
    def _unique_names(self) -> OntologyClass:
        seen: set[str] = set()
        for name in [p.name for p in self.properties] + [r.predicate for r in self.relationships]:
            if name in seen:
                raise ValueError(f"property or relationship name {name!r} is used more than once")
            seen.add(name)
        if self.parent_class == self.id:
            raise ValueError(f"class {self.id!r} cannot be its own parent")
        return self

    def referenced_classes(self) -> set[str]:
        """Classes this one depends on: its parent, link targets and relationship targets (not itself)."""
        refs = {p.target for p in self.properties if p.target} | {r.target for r in self.relationships}
        if self.parent_class:
            refs.add(self.parent_class)
        refs.discard(self.id)
        return {r for r in refs if r}


class DatabaseSpec(BaseModel):
    """Body of a database create command."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(json_schema_extra={"pattern": DATABASE_NAME.pattern})
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_database_name(v)


ClassAction = Literal["create", "update", "delete"]
