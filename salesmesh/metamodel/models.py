"""Definition tables: a definition (kind + key) has numbered versions that move draft → published →
archived, and installed template packs are remembered by key, version and checksum.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from salesmesh.platform.db import Base, JSONType, UTCDateTime

VERSION_STATES = ("draft", "published", "archived")


class Definition(Base):
    __tablename__ = "definitions"
    __table_args__ = (UniqueConstraint("kind", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Which pack last installed it (None = made in the builder).
    pack_key: Mapped[str | None] = mapped_column(String(80))

    versions: Mapped[list[DefinitionVersion]] = relationship(
        back_populates="definition", order_by="DefinitionVersion.number"
    )


class DefinitionVersion(Base):
    __tablename__ = "definition_versions"
    __table_args__ = (
        UniqueConstraint("definition_id", "number"),
        Index("ix_definition_versions_def_status", "definition_id", "status"),
        # At most one open draft and one published version per definition, enforced by the database
        # too, so two concurrent saves or publishes cannot both win.
        Index(
            "uq_definition_versions_one_draft",
            "definition_id",
            unique=True,
            sqlite_where=text("status = 'draft'"),
            postgresql_where=text("status = 'draft'"),
        ),
        Index(
            "uq_definition_versions_one_published",
            "definition_id",
            unique=True,
            sqlite_where=text("status = 'published'"),
            postgresql_where=text("status = 'published'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("definitions.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    document: Mapped[dict[str, Any]] = mapped_column(JSONType)
    checksum: Mapped[str] = mapped_column(String(64))
    schema_version: Mapped[int] = mapped_column(Integer)
    # Optimistic concurrency for drafts: a save must name the lock_version it read (stale → 409).
    lock_version: Mapped[int] = mapped_column(Integer, default=1)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    definition: Mapped[Definition] = relationship(back_populates="versions")

    __mapper_args__ = {"version_id_col": lock_version}


class PackInstall(Base):
    """One applied import of a template pack; re-importing the same checksum is a no-op."""

    __tablename__ = "pack_installs"
    __table_args__ = (UniqueConstraint("pack_key", "checksum"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pack_key: Mapped[str] = mapped_column(String(80), index=True)
    version: Mapped[str] = mapped_column(String(40))
    checksum: Mapped[str] = mapped_column(String(64))
    manifest: Mapped[dict[str, Any]] = mapped_column(JSONType)
    summary: Mapped[dict[str, Any]] = mapped_column(JSONType)
    installed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    installed_at: Mapped[datetime] = mapped_column(UTCDateTime())
