"""``kallglot render [--out DIR]`` and ``kallglot reload`` (JSON on stdout, errors on stderr)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from controller.fsconfig.model import ConfigInputError
from controller.fsconfig.service import FsConfigService, ReloadError
from controller.fsconfig.validate import RenderValidationError
from controller.settings import Settings
from controller.store import open_store


def _fail(code: str, exc: Exception, **extra: object) -> int:
    body: dict[str, object] = {"code": code, "message": str(exc)}
    if isinstance(exc, ConfigInputError):
        body["field"] = exc.field
    if isinstance(exc, RenderValidationError):
        body["problems"] = exc.problems
    print(json.dumps({"error": body | extra}), file=sys.stderr)
    return 1


def cli_render(args: argparse.Namespace, settings: Settings) -> int:
    store = open_store(settings.db_path)
    try:
        service = FsConfigService(store, settings)
        out = getattr(args, "out", None)
        summary = service.render_to(Path(out)) if out else service.render_live()
    except (ConfigInputError, RenderValidationError) as exc:
        return _fail("invalid_configuration", exc)
    finally:
        store.close()
    print(json.dumps(summary))
    return 0


def cli_reload(args: argparse.Namespace, settings: Settings) -> int:
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    store = open_store(settings.db_path)
    try:
        outcome = FsConfigService(store, settings).reload(
            restart_profile=bool(getattr(args, "restart_profile", False)))
    except (ConfigInputError, RenderValidationError) as exc:
        return _fail("invalid_configuration", exc)
    except ReloadError as exc:
        return _fail("freeswitch_reload_failed", exc, **exc.as_dict())
    finally:
        store.close()
    print(json.dumps(outcome.as_dict()))
    return 0 if outcome.ok else 1  # several nodes: some did not apply it (see "nodes")
