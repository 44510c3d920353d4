"""API keys: shown once, stored hashed, revoked for good."""

from __future__ import annotations

from datakeep import Client


def test_keys_are_hashed_and_revocation_keeps_its_first_time() -> None:
    client = Client(progress=False)
    client.admin.create_team("acme")
    new = client.admin.create_key("acme", name="ci")
    assert client.admin.authenticate(new.key) is not None
    (listed,) = client.admin.list_keys("acme")
    assert new.key not in str(listed)  # only a prefix is kept
    assert listed["prefix"] == new.key[:8]

    client.admin.revoke_key(new.id)
    assert client.admin.authenticate(new.key) is None
    first = client.admin.list_keys("acme")[0]["revoked"]
    client.admin.revoke_key(new.id)
    assert client.admin.list_keys("acme")[0]["revoked"] == first
