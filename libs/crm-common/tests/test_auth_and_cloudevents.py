from __future__ import annotations

import pytest
from crm_common.auth import AuthContext, InvalidAuthContext, sign_context, verify_context
from crm_common.cloudevents import BATCH_CONTENT_TYPE, CloudEvent, decode_events, encode_batch, encode_event


def test_signed_context_round_trips_and_rejects_tampering() -> None:
    header = sign_context(AuthContext(account_id=7, scopes=["crm.objects.contacts.read"]), "secret")
    assert verify_context(header, "secret").account_id == 7
    with pytest.raises(InvalidAuthContext):
        verify_context(header, "other-secret")
    payload, signature = header.split(".")
    forged = sign_context(AuthContext(account_id=8), "secret").split(".")[0]
    with pytest.raises(InvalidAuthContext):
        verify_context(f"{forged}.{signature}", "secret")
    with pytest.raises(InvalidAuthContext):
        verify_context(header, "secret", now=10**10)


def test_cloudevents_single_and_batch_decode_alike() -> None:
    events = [CloudEvent(source="s", type="record.created", corralaccount=1, data={"i": i}) for i in range(3)]
    assert [e.id for e in decode_events(encode_batch(events), BATCH_CONTENT_TYPE)] == [e.id for e in events]
    single = decode_events(encode_event(events[0]), "application/cloudevents+json")
    assert single[0].data == {"i": 0} and single[0].specversion == "1.0"
