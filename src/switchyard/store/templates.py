"""`pf_config_templates`: named sets of values applied together."""

from __future__ import annotations

from switchyard.domain.errors import NotFound
from switchyard.domain.models import JSONValue, Page, PageRequest, Template
from switchyard.store.rows import document, flag, from_json, strings
from switchyard.store.session import Row, Session
from switchyard.store.sql import Sql

_COLUMNS = """id, template_name, template_type, description, config_values, feature_flags,
    rate_limits, suitable_environments, suitable_scale, prerequisites, version, is_default,
    is_active, usage_count, author, team, created_at, updated_at"""

GET_TEMPLATE = Sql(
    "get_template",
    f"SELECT {_COLUMNS} FROM pf_config_templates WHERE template_name = :template_name",
)
LIST_TEMPLATES = Sql(
    "list_templates",
    f"""SELECT {_COLUMNS} FROM pf_config_templates
    WHERE (:include_inactive = 1 OR is_active = 1)
    AND (:after_name IS NULL OR template_name > :after_name)
    ORDER BY template_name
    {{row_limit}}""",
)
UPDATE_TEMPLATE = Sql(
    "update_template",
    """UPDATE pf_config_templates SET template_type = :template_type,
    description = :description, config_values = :config_values,
    feature_flags = :feature_flags, rate_limits = :rate_limits,
    suitable_environments = :suitable_environments, suitable_scale = :suitable_scale,
    prerequisites = :prerequisites, version = :version, is_default = :is_default,
    is_active = :is_active, author = :author, team = :team, updated_at = :updated_at
    WHERE template_name = :template_name""",
)
INSERT_TEMPLATE = Sql(
    "insert_template",
    f"""INSERT INTO pf_config_templates ({_COLUMNS})
    VALUES (:id, :template_name, :template_type, :description, :config_values,
    :feature_flags, :rate_limits, :suitable_environments, :suitable_scale, :prerequisites,
    :version, :is_default, :is_active, :usage_count, :author, :team, :created_at,
    :updated_at)""",
)
INCREMENT_USAGE = Sql(
    "increment_template_usage",
    """UPDATE pf_config_templates SET usage_count = usage_count + 1
    WHERE template_name = :template_name""",
)


class SqlTemplateRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    async def get_template(self, name: str) -> Template:
        row = await self._session.fetch_one(GET_TEMPLATE, {"template_name": name})
        if row is None:
            raise NotFound(f"template {name!r} not found")
        return self._template(row)

    async def list_templates(self, include_inactive: bool, page: PageRequest) -> Page[Template]:
        rows = await self._session.fetch_all(
            LIST_TEMPLATES,
            {
                "include_inactive": include_inactive,
                "after_name": page.cursor,
                "row_limit": page.size + 1,
            },
        )
        items = [self._template(row) for row in rows[: page.size]]
        more = len(rows) > page.size
        return Page(items=items, next_cursor=items[-1].name if more and items else None)

    async def upsert_template(self, template: Template) -> bool:
        binds = self._binds(template)
        if await self._session.execute(UPDATE_TEMPLATE, binds):
            return False
        await self._session.execute(INSERT_TEMPLATE, binds)
        return True

    async def increment_usage(self, name: str) -> None:
        await self._session.execute(INCREMENT_USAGE, {"template_name": name})

    def _template(self, row: Row) -> Template:
        read_time = self._session.dialect.read_time
        values = from_json(row["config_values"])
        return Template(
            id=row["id"],
            name=row["template_name"],
            template_type=row["template_type"],
            description=row["description"],
            config_values=_mapping(values) or {},
            feature_flags=_mapping(from_json(row["feature_flags"])),
            rate_limits=_mapping(from_json(row["rate_limits"])),
            suitable_environments=strings(row["suitable_environments"]),
            suitable_scale=row["suitable_scale"],
            prerequisites=strings(row["prerequisites"]),
            version=row["version"],
            is_default=flag(row["is_default"]),
            is_active=flag(row["is_active"]),
            usage_count=int(row["usage_count"]),
            author=row["author"],
            team=row["team"],
            created_at=read_time(row["created_at"]),
            updated_at=read_time(row["updated_at"]),
        )

    @staticmethod
    def _binds(template: Template) -> dict[str, object]:
        return {
            "id": template.id,
            "template_name": template.name,
            "template_type": template.template_type,
            "description": template.description,
            "config_values": document(template.config_values),
            "feature_flags": document(template.feature_flags),
            "rate_limits": document(template.rate_limits),
            "suitable_environments": (
                document(list(template.suitable_environments))
                if template.suitable_environments
                else None
            ),
            "suitable_scale": template.suitable_scale,
            "prerequisites": (
                document(list(template.prerequisites)) if template.prerequisites else None
            ),
            "version": template.version,
            "is_default": template.is_default,
            "is_active": template.is_active,
            "usage_count": template.usage_count,
            "author": template.author,
            "team": template.team,
            "created_at": template.created_at,
            "updated_at": template.updated_at,
        }


def _mapping(value: JSONValue) -> dict[str, JSONValue] | None:
    return value if isinstance(value, dict) else None


__all__ = ["SqlTemplateRepository"]
