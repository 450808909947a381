from __future__ import annotations

import pytest
from pymongo.database import Database

from bbx.mongo import MongoUnavailableError, connect, free_port, redact
from bbx.settings import load_settings


def test_embedded_server_answers_and_stores(mongo_db: Database) -> None:
    mongo_db.things.insert_one({"a": 1})
    assert mongo_db.things.count_documents({}) == 1


def test_unreachable_server_error_names_host_without_credentials(tmp_path) -> None:
    uri = f"mongodb://scott:tiger@127.0.0.1:{free_port()}/"
    settings = load_settings(home=tmp_path, mongo={"uri": uri, "server_selection_timeout_ms": 300})
    with pytest.raises(MongoUnavailableError) as info:
        connect(uri, settings)
    message = str(info.value)
    assert "127.0.0.1" in message
    assert "tiger" not in message and "scott" not in message


def test_redact_drops_credentials() -> None:
    assert redact("mongodb://u:p@db.example:27017/x?authSource=admin") == "mongodb://db.example:27017"
