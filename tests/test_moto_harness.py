"""The tests' moto server keeps DynamoDB's transaction semantics with one backup per table (tests/support/aws.py)."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.aws import Moto


def _table(client: Any) -> str:
    name = f"ppc-harness-{uuid.uuid4().hex[:8]}"
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def _set(table: str, key: str, value: str, condition: str | None = None) -> dict[str, Any]:
    update: dict[str, Any] = {
        "TableName": table,
        "Key": {"k": {"S": key}},
        "UpdateExpression": "SET v = :v",
        "ExpressionAttributeValues": {":v": {"S": value}},
    }
    if condition is not None:
        update["ConditionExpression"] = condition
    return {"Update": update}


def _values(client: Any, table: str) -> dict[str, str]:
    items = client.scan(TableName=table, ConsistentRead=True)["Items"]
    return {item["k"]["S"]: item.get("v", {}).get("S", "") for item in items}


def test_a_transaction_whose_condition_fails_changes_no_table(moto: Moto) -> None:
    client = moto.client("dynamodb")
    first, second = _table(client), _table(client)
    client.transact_write_items(
        TransactItems=[_set(first, f"a{i}", "old") for i in range(10)] + [_set(second, "b", "old")]
    )
    items = [_set(first, f"a{i}", "new") for i in range(10)] + [
        _set(second, "b", "new"),
        _set(second, "c", "new", "v = :v"),
    ]
    with pytest.raises(ClientError) as raised:
        client.transact_write_items(TransactItems=items)
    reasons = [reason["Code"] for reason in raised.value.response["CancellationReasons"]]
    assert reasons == ["None"] * 11 + ["ConditionalCheckFailed"]
    assert _values(client, first) == {f"a{i}": "old" for i in range(10)}
    assert _values(client, second) == {"b": "old"}
    client.transact_write_items(TransactItems=items[:11])
    assert _values(client, first) == {f"a{i}": "new" for i in range(10)}
    assert _values(client, second) == {"b": "new"}


def test_a_transaction_copies_each_table_once(moto: Moto, monkeypatch: pytest.MonkeyPatch) -> None:
    """Moto itself copies the table once per item: 50 items on one table would be 50 copies of it."""
    client = moto.client("dynamodb")
    table = _table(client)
    copied: list[str] = []
    real = copy.deepcopy

    def counting(obj: Any, *args: Any) -> Any:
        copied.append(type(obj).__name__)
        return real(obj, *args)

    monkeypatch.setattr(copy, "deepcopy", counting)
    client.transact_write_items(TransactItems=[_set(table, f"a{i}", "x") for i in range(50)])
    assert copied.count("Table") == 1
    assert len(_values(client, table)) == 50
