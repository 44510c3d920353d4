"""The catalog's tables, in SQLAlchemy Core.

The migrations in ``migrations/versions/`` create exactly these tables; a test compares the
two so they cannot drift. Times are timezone-aware UTC.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

#: The team every embedded (serverless) catalog works in.
LOCAL_TEAM_ID = "telocal00000000"

teams = Table(
    "teams",
    metadata,
    Column("id", String(15), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created", DateTime(timezone=True), nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("team_id", String(15), ForeignKey("teams.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(200), nullable=True),
    # SHA-256 of the key: keys are random 256-bit strings, so a slow hash buys nothing.
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("revoked", DateTime(timezone=True), nullable=True),
    Column("last_used", DateTime(timezone=True), nullable=True),
)

storage_providers = Table(
    "storage_providers",
    metadata,
    Column("id", String(15), primary_key=True),
    Column("team_id", String(15), ForeignKey("teams.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("type", String(32), nullable=False),
    # Secrets inside are encrypted at rest by the server (``enc:`` prefix); see services.storage_providers.
    Column("config", JSON, nullable=False),
    Column("is_default", Boolean, nullable=False, default=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("modified", DateTime(timezone=True), nullable=False),
)

datasets = Table(
    "datasets",
    metadata,
    Column("id", String(15), primary_key=True),
    Column("team_id", String(15), ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=True),
    Column(
        "storage_provider_id",
        String(15),
        ForeignKey("storage_providers.id", ondelete="RESTRICT"),
        nullable=False,
        index=True,
    ),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("modified", DateTime(timezone=True), nullable=False),
    UniqueConstraint("team_id", "name", name="uq_datasets_team_id_name"),
)

versions = Table(
    "versions",
    metadata,
    Column("dataset_id", String(15), ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True),
    Column("version", String(7), primary_key=True),
    Column("message", Text, nullable=True),
    Column("is_committed", Boolean, nullable=False, default=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("modified", DateTime(timezone=True), nullable=False),
    Column("committed", DateTime(timezone=True), nullable=True),
    # Increases with every commit in a dataset: the highest committed one is ``latest``.
    Column("commit_seq", BigInteger, nullable=True),
    # Digest of the manifest's root tree (storage engine); NULL means empty.
    Column("root", String(80), nullable=True),
    Column("file_count", BigInteger, nullable=False, default=0),
    Column("size", BigInteger, nullable=False, default=0),
    Column("parent", String(7), nullable=True),
    Column("job_id", String(15), nullable=True, index=True),
    Index("ix_versions_latest", "dataset_id", "is_committed", "commit_seq"),
)

tags = Table(
    "tags",
    metadata,
    Column("dataset_id", String(15), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("version", String(7), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("modified", DateTime(timezone=True), nullable=False),
    ForeignKeyConstraint(
        ["dataset_id", "version"],
        ["versions.dataset_id", "versions.version"],
        ondelete="CASCADE",
        name="fk_tags_version",
    ),
)

# Content-addressed manifest tree nodes (storage engine). Shared by every dataset: a tree is
# identified by the digest of its bytes, so identical directories are stored once.
trees = Table(
    "trees",
    metadata,
    Column("digest", String(80), primary_key=True),
    Column("data", LargeBinary, nullable=False),
)

# Where each distinct content digest lives on each provider: a whole object or a range of a pack.
blobs = Table(
    "blobs",
    metadata,
    Column(
        "storage_provider_id",
        String(15),
        ForeignKey("storage_providers.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("digest", String(80), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("key", String(1024), nullable=False),
    Column("offset", BigInteger, nullable=False, default=0),
    Column("created", DateTime(timezone=True), nullable=False),
)

# Jobs and experiments (``kind``) share one table: both run a command over mounted data.
jobs = Table(
    "jobs",
    metadata,
    Column("id", String(15), primary_key=True),
    Column("team_id", String(15), ForeignKey("teams.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("kind", String(16), nullable=False, default="job"),
    Column("name", String(200), nullable=True),
    Column("command", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("exit_code", Integer, nullable=True),
    # Everything else the run was given (env with secrets redacted, machine type, ...), as JSON.
    Column("spec", JSON, nullable=False),
    Column("log_path", String(1024), nullable=True),
    Column("pid", Integer, nullable=True),
    Column("host", String(255), nullable=True),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("started", DateTime(timezone=True), nullable=True),
    Column("finished", DateTime(timezone=True), nullable=True),
)

# Lineage: which dataset versions a job read and wrote, pinned to version IDs.
job_datasets = Table(
    "job_datasets",
    metadata,
    Column("job_id", String(15), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("dataset_id", String(15), nullable=False),
    Column("ref", String(100), nullable=False),
    Column("version", String(7), nullable=True),
    Column("output", Boolean, nullable=False, default=False),
    Index("ix_job_datasets_version", "dataset_id", "version"),
)
