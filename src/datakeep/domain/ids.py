"""Identifiers shaped like Gradient's, so old scripts that pattern-match them keep working.

Datasets are ``ds`` plus 13 base36 characters (``dst364npcw6ccok``), storage providers ``sp``
plus 13, versions 7 characters unique within their dataset (``fo5rp4m``).
"""

from __future__ import annotations

import re
import secrets

from datakeep.errors import InvalidReference

ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"

# \A and \Z, not ^ and $: ``$`` also matches before a final newline, which let "prod\n" in.
DATASET_ID = re.compile(r"\Ads[0-9a-z]{13}\Z")
STORAGE_PROVIDER_ID = re.compile(r"\Asp[0-9a-z]{13}\Z")
VERSION_ID = re.compile(r"\A[0-9a-z]{7}\Z")
JOB_ID = re.compile(r"\Aj[0-9a-z]{13}\Z")
EXPERIMENT_ID = re.compile(r"\Ae[0-9a-z]{13}\Z")
TEAM_ID = re.compile(r"\Ate[0-9a-z]{13}\Z")


def _random(n: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(n))


def new_dataset_id() -> str:
    return "ds" + _random(13)


def new_storage_provider_id() -> str:
    return "sp" + _random(13)


def new_version_id() -> str:
    """Random, not sequential: the catalog retries on the (rare) clash within a dataset."""
    return _random(7)


def new_job_id() -> str:
    return "j" + _random(13)


def new_experiment_id() -> str:
    return "e" + _random(13)


def new_team_id() -> str:
    return "te" + _random(13)


def check_dataset_id(text: str, *, option: str = "--id") -> str:
    if not DATASET_ID.match(text):
        raise InvalidReference(
            f"{text!r} is not a dataset ID",
            hint=f"Pass '{option}' a dataset ID such as dsr8k5qzn401lb5 (see: datakeep datasets list)",
        )
    return text


def check_storage_provider_id(text: str, *, option: str = "--id") -> str:
    if not STORAGE_PROVIDER_ID.match(text):
        raise InvalidReference(
            f"{text!r} is not a storage provider ID",
            hint=f"Pass '{option}' an ID such as splgct3arqdh77c (see: datakeep storageProviders list)",
        )
    return text
