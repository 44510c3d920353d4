"""One datakeep operation in its own process, so the benchmark measures its wall time and peak memory
like any other tool's. Uses the library (Catalog + ContentStore), the same code the CLI runs."""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

from datakeep.catalog.schema import LOCAL_TEAM_ID
from datakeep.catalog.store import Catalog
from datakeep.config import Settings
from datakeep.domain.models import StorageProvider
from datakeep.providers.registry import open_provider
from datakeep.storage.content import ContentStore


def _store(args: argparse.Namespace) -> tuple[Catalog, ContentStore]:
    config: dict[str, Any] = json.loads(args.provider)
    settings = Settings(home=Path(args.home))
    catalog = Catalog(f"sqlite:///{Path(args.home) / 'catalog.db'}")
    name = f"bench-{config.get('type')}-{config.get('bucket', '')}{config.get('prefix', '')}{config.get('path', '')}"
    existing = [p for p in catalog.list_providers(LOCAL_TEAM_ID) if p.name == name[:200]]
    kind = config.pop("type")
    record = (
        existing[0]
        if existing
        else catalog.insert_provider(LOCAL_TEAM_ID, name=name[:200], type=kind, config=config)
    )
    sp = StorageProvider(id=record.id, name=record.name, type=kind, config=config)
    return catalog, ContentStore(catalog, open_provider(sp, settings), record.id, settings, progress=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("op", choices=["create", "get"])
    parser.add_argument("--home", required=True)
    parser.add_argument("--provider", required=True, help="JSON: a storage provider config plus its type")
    parser.add_argument("--src")
    parser.add_argument("--root")
    parser.add_argument("--hint")
    parser.add_argument("--dest")
    args = parser.parse_args()
    catalog, store = _store(args)
    start = time.perf_counter()  # the operation alone: imports and catalog set-up are reported apart
    result: dict[str, Any] = {}
    if args.op == "create":
        summary = store.snapshot([args.src.rstrip("/") + "/"], hint_root=args.hint)
        result = {"root": summary.root, "files": summary.file_count, "bytes": summary.size}
    else:
        result = {"files": store.get(args.root, Path(args.dest))}
    result["op_seconds"] = time.perf_counter() - start
    result["maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    store.provider.close()
    catalog.close()
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
