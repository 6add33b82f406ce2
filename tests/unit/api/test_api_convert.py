"""Protobuf <-> service values: the proto's field rules, and answers that never leak a score."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from bioauth.api import convert
from bioauth.errors import FailedPrecondition, InvalidInput
from bioauth.inference.decode import RawImage
from bioauth.matching.decision import Decision, DecisionReason, ScoreBand, Verdict
from bioauth.service.domain import AuthorizationOutcome, DeletionOutcome
from bioauth.v1 import bioauth_pb2, types_pb2
from bioauth.wire import transaction_hash_b64

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def _ts(at: datetime = NOW) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(at)
    return ts


def _tx(**change: object) -> types_pb2.TransactionContext:
    fields: dict[str, object] = {
        "transaction_id": "tx-1",
        "amount_minor": 1250,
        "currency": "EUR",
        "timestamp": _ts(),
        "nonce": "nonce-123456",
    }
    fields.update(change)
    return types_pb2.TransactionContext(**fields)  # type: ignore[arg-type]


def _enrol(**change: object) -> bioauth_pb2.EnrollRequest:
    fields: dict[str, object] = {
        "subject": types_pb2.SubjectRef(external_ref="acct-1"),
        "consent": types_pb2.Consent(
            policy_version="2026-10",
            consented_at=_ts(),
            channel=types_pb2.CONSENT_CHANNEL_TERMINAL,
            purpose="payment-authentication",
            identification=True,
        ),
        "samples": [types_pb2.FaceImage(encoded=b"\x89PNG...")],
        "idempotency_key": "k-1",
    }
    fields.update(change)
    return bioauth_pb2.EnrollRequest(**fields)  # type: ignore[arg-type]


def test_transaction_binds_the_canonical_hash() -> None:
    tx = _tx()
    assert convert.transaction(tx).binding == transaction_hash_b64(tx)


@pytest.mark.parametrize(
    "change",
    [
        {"transaction_id": ""},
        {"transaction_id": "x" * 129},
        {"currency": "eur"},
        {"currency": "EU1"},
        {"nonce": "short"},
        {"timestamp": None},
        {"amount_minor": 2**53},
    ],
)
def test_malformed_transactions_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        convert.transaction(_tx(**change))


def test_enrol_request_carries_consent_and_images() -> None:
    raw = types_pb2.FaceImage(raw=types_pb2.RawImage(rgb8=b"\x00" * 12, width=2, height=2))
    request = convert.enrol_request(_enrol(samples=[types_pb2.FaceImage(encoded=b"abc"), raw]))
    assert request.samples == (b"abc", RawImage(b"\x00" * 12, 2, 2))
    assert request.channel == "terminal"
    assert request.identification
    assert request.consented_at == NOW


def test_enrolment_without_consent_is_a_failed_precondition() -> None:
    request = _enrol()
    request.ClearField("consent")
    with pytest.raises(FailedPrecondition):
        convert.enrol_request(request)


@pytest.mark.parametrize(
    "change",
    [
        {"samples": []},
        {"samples": [types_pb2.FaceImage(encoded=b"a")] * 4},
        {"samples": [types_pb2.FaceImage()]},
        {"idempotency_key": ""},
        {"subject": types_pb2.SubjectRef(external_ref="has space")},
        {"subject": types_pb2.SubjectRef(external_ref="")},
    ],
)
def test_malformed_enrolments_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(InvalidInput) as caught:
        convert.enrol_request(_enrol(**change))
    assert "has space" not in caught.value.message


def test_a_decline_has_a_reason_and_no_token() -> None:
    result = convert.authorization_result(
        AuthorizationOutcome(
            verdict=Verdict(
                decision=Decision.DECLINE,
                reason=DecisionReason.SCORE_BELOW_THRESHOLD,
                band=ScoreBand.LOW,
                operating_point="fmr_1e-3",
                enrolment_images=1,
                probe_images=1,
                subject_id="s-1",
            ),
            external_ref="",
            model_id="m",
            decision_id="d-1",
        )
    )
    assert result.decision == types_pb2.DECISION_DECLINE
    assert result.reason == types_pb2.DECISION_REASON_SCORE_BELOW_THRESHOLD
    assert result.score_band == types_pb2.SCORE_BAND_LOW
    assert result.token == ""
    assert not result.HasField("token_expires_at")
    assert (result.comparison_mode.enrolment_images, result.comparison_mode.probe_images) == (1, 1)


def _result(verdict: Verdict) -> types_pb2.AuthorizationResult:
    return convert.authorization_result(
        AuthorizationOutcome(verdict=verdict, external_ref="", model_id="m", decision_id="d")
    )


def test_every_word_of_the_vocabulary_has_its_proto_namesake() -> None:
    """One table per enum covers every member, each onto the proto value of the same name."""
    for decision in Decision:
        proto_decision = _result(Verdict(decision, None)).decision
        assert types_pb2.Decision.Name(proto_decision) == f"DECISION_{decision.name}"
    for reason in [None, *DecisionReason]:
        name = "UNSPECIFIED" if reason is None else reason.name
        proto_reason = _result(Verdict(Decision.DECLINE, reason)).reason
        assert types_pb2.DecisionReason.Name(proto_reason) == f"DECISION_REASON_{name}"
    for band in [None, *ScoreBand]:
        name = "UNSPECIFIED" if band is None else band.name
        proto_band = _result(Verdict(Decision.DECLINE, None, band)).score_band
        assert types_pb2.ScoreBand.Name(proto_band) == f"SCORE_BAND_{name}"


def test_an_approval_carries_its_token_and_expiry() -> None:
    result = convert.authorization_result(
        AuthorizationOutcome(
            verdict=Verdict(
                decision=Decision.APPROVE,
                reason=None,
                band=ScoreBand.VERY_HIGH,
                operating_point="fmr_1e-3",
                enrolment_images=3,
                probe_images=2,
                subject_id="s-1",
            ),
            external_ref="acct-1",
            model_id="m",
            decision_id="d-1",
            token="a.b.c",
            token_expires_at=NOW,
        )
    )
    assert result.decision == types_pb2.DECISION_APPROVE
    assert result.reason == types_pb2.DECISION_REASON_UNSPECIFIED
    assert result.token == "a.b.c"
    assert result.token_expires_at.ToDatetime(tzinfo=UTC) == NOW


def test_deletion_status_is_pending_until_done() -> None:
    pending = convert.delete_response(DeletionOutcome("s-1", done=False, withdrawn_at=NOW))
    done = convert.delete_response(DeletionOutcome("s-1", done=True, withdrawn_at=NOW))
    assert pending.status == bioauth_pb2.DELETION_STATUS_PENDING
    assert done.status == bioauth_pb2.DELETION_STATUS_DONE
