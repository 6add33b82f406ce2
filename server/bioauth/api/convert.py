"""Protobuf messages to service values and back; the only place that knows both.

Field checks that the proto states (lengths, required fields, image counts) happen here, so the
service layer receives well-formed values and every front end gets the same answers from it.
Errors name the offending field but never echo its value (an external reference identifies a
person to the tenant).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from bioauth.errors import FailedPrecondition, InvalidInput
from bioauth.inference.decode import RawImage
from bioauth.matching.decision import Decision, DecisionReason, ScoreBand
from bioauth.service.domain import (
    AuthorizationOutcome,
    DeletionOutcome,
    EnrolOutcomeView,
    EnrolRequest,
    FaceInput,
    SampleReason,
    SubjectView,
    Transaction,
)
from bioauth.v1 import bioauth_pb2, types_pb2
from bioauth.wire import (
    MAX_ID_LENGTH,
    MAX_IMAGES_PER_REQUEST,
    TransactionEncodingError,
    transaction_hash_b64,
)

__all__ = [
    "authorization_result",
    "delete_response",
    "enrol_request",
    "enrol_response",
    "external_ref",
    "face_inputs",
    "subject_response",
    "transaction",
]

_MIN_NONCE = 8
_CHANNEL_PREFIX = "CONSENT_CHANNEL_"
_SAMPLE_REASON = {
    SampleReason.UNREADABLE: types_pb2.SAMPLE_REJECT_REASON_UNREADABLE,
    SampleReason.TOO_SMALL: types_pb2.SAMPLE_REJECT_REASON_TOO_SMALL,
    SampleReason.TOO_BLURRED: types_pb2.SAMPLE_REJECT_REASON_TOO_BLURRED,
    SampleReason.TOO_DARK: types_pb2.SAMPLE_REJECT_REASON_TOO_DARK,
    SampleReason.IMPLAUSIBLE_EMBEDDING: types_pb2.SAMPLE_REJECT_REASON_IMPLAUSIBLE_EMBEDDING,
}
_DECISION = {
    Decision.APPROVE: types_pb2.DECISION_APPROVE,
    Decision.DECLINE: types_pb2.DECISION_DECLINE,
    Decision.NO_MATCH: types_pb2.DECISION_NO_MATCH,
    Decision.AMBIGUOUS: types_pb2.DECISION_AMBIGUOUS,
    Decision.RETRY: types_pb2.DECISION_RETRY,
}
_DECISION_REASON = {
    DecisionReason.SCORE_BELOW_THRESHOLD: types_pb2.DECISION_REASON_SCORE_BELOW_THRESHOLD,
    DecisionReason.NO_CANDIDATE: types_pb2.DECISION_REASON_NO_CANDIDATE,
    DecisionReason.RUNNER_UP_TOO_CLOSE: types_pb2.DECISION_REASON_RUNNER_UP_TOO_CLOSE,
    DecisionReason.NO_USABLE_PROBE: types_pb2.DECISION_REASON_NO_USABLE_PROBE,
    DecisionReason.MORE_FRAMES_NEEDED: types_pb2.DECISION_REASON_MORE_FRAMES_NEEDED,
    DecisionReason.NO_OPERATING_POINT: types_pb2.DECISION_REASON_NO_OPERATING_POINT,
    DecisionReason.EMPTY_GALLERY: types_pb2.DECISION_REASON_EMPTY_GALLERY,
    DecisionReason.QUALITY_TOO_LOW: types_pb2.DECISION_REASON_QUALITY_TOO_LOW,
    DecisionReason.SESSION_BUDGET_SPENT: types_pb2.DECISION_REASON_SESSION_BUDGET_SPENT,
}
_SCORE_BAND = {
    ScoreBand.VERY_HIGH: types_pb2.SCORE_BAND_VERY_HIGH,
    ScoreBand.HIGH: types_pb2.SCORE_BAND_HIGH,
    ScoreBand.LOW: types_pb2.SCORE_BAND_LOW,
    ScoreBand.VERY_LOW: types_pb2.SCORE_BAND_VERY_LOW,
}
_STATUS = {
    "enrolled": bioauth_pb2.ENROLMENT_STATUS_ENROLLED,
    "opt_out_pending": bioauth_pb2.ENROLMENT_STATUS_OPT_OUT_PENDING,
    "opted_out": bioauth_pb2.ENROLMENT_STATUS_OPTED_OUT,
}


def _bounded_id(value: str, field: str, *, minimum: int = 1, printable: bool = False) -> str:
    if not minimum <= len(value) <= MAX_ID_LENGTH:
        raise InvalidInput(f"must be {minimum} to {MAX_ID_LENGTH} characters", field=field)
    if printable and not all(" " < ch <= "~" for ch in value):
        raise InvalidInput("must be printable ASCII without spaces", field=field)
    return value


def external_ref(subject: types_pb2.SubjectRef, field: str = "subject.external_ref") -> str:
    return _bounded_id(subject.external_ref, field, printable=True)


def face_inputs(images: Sequence[types_pb2.FaceImage], field: str) -> tuple[FaceInput, ...]:
    """1 to MAX_IMAGES_PER_REQUEST images; more is refused, never truncated."""
    if not 1 <= len(images) <= MAX_IMAGES_PER_REQUEST:
        raise InvalidInput(
            f"needs 1 to {MAX_IMAGES_PER_REQUEST} images, got {len(images)}", field=field
        )
    out: list[FaceInput] = []
    for index, image in enumerate(images):
        kind = image.WhichOneof("data")
        if kind == "encoded":
            out.append(bytes(image.encoded))
        elif kind == "raw":
            out.append(RawImage(bytes(image.raw.rgb8), image.raw.width, image.raw.height))
        else:
            raise InvalidInput("holds no image (set encoded or raw)", field=f"{field}[{index}]")
    return tuple(out)


def _time(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def _timestamp(at: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(at.astimezone(UTC))
    return ts


def enrol_request(request: bioauth_pb2.EnrollRequest) -> EnrolRequest:
    if not request.HasField("subject"):
        raise InvalidInput("is required", field="subject")
    ref = external_ref(request.subject)
    if not request.HasField("consent"):
        raise FailedPrecondition("enrolment needs the person's consent")
    consent = request.consent
    if not consent.policy_version:
        raise InvalidInput("is required", field="consent.policy_version")
    _bounded_id(consent.policy_version, "consent.policy_version")
    if not consent.HasField("consented_at"):
        raise InvalidInput("is required", field="consent.consented_at")
    if consent.channel == types_pb2.CONSENT_CHANNEL_UNSPECIFIED:
        raise InvalidInput("is required", field="consent.channel")
    if not consent.purpose:
        raise InvalidInput("is required", field="consent.purpose")
    _bounded_id(consent.purpose, "consent.purpose")
    channel = types_pb2.ConsentChannel.Name(consent.channel).removeprefix(_CHANNEL_PREFIX).lower()
    return EnrolRequest(
        external_ref=ref,
        policy_version=consent.policy_version,
        consented_at=_time(consent.consented_at),
        channel=channel,
        purpose=consent.purpose,
        identification=consent.identification,
        samples=face_inputs(request.samples, "samples"),
        idempotency_key=_bounded_id(request.idempotency_key, "idempotency_key"),
    )


def transaction(tx: types_pb2.TransactionContext, field: str = "transaction") -> Transaction:
    """Checks the proto's rules and binds the context's canonical hash."""
    _bounded_id(tx.transaction_id, f"{field}.transaction_id")
    _bounded_id(tx.merchant_id, f"{field}.merchant_id", minimum=0)
    _bounded_id(tx.terminal_id, f"{field}.terminal_id", minimum=0)
    currency = tx.currency
    if len(currency) != 3 or not (currency.isascii() and currency.isalpha() and currency.isupper()):
        raise InvalidInput("must be three upper-case letters (ISO 4217)", field=f"{field}.currency")
    if not tx.HasField("timestamp"):
        raise InvalidInput("is required", field=f"{field}.timestamp")
    _bounded_id(tx.nonce, f"{field}.nonce", minimum=_MIN_NONCE)
    try:
        binding = transaction_hash_b64(tx)
    except TransactionEncodingError as exc:
        raise InvalidInput(str(exc), field=field) from exc
    return Transaction(transaction_id=tx.transaction_id, binding=binding)


def enrol_response(view: EnrolOutcomeView) -> bioauth_pb2.EnrollResponse:
    return bioauth_pb2.EnrollResponse(
        subject_id=view.subject_id,
        model_id=view.model_id,
        template_count=view.template_count,
        samples=[
            bioauth_pb2.SampleResult(
                index=s.index,
                accepted=s.accepted,
                reason=types_pb2.SAMPLE_REJECT_REASON_UNSPECIFIED
                if s.reason is None
                else _SAMPLE_REASON[s.reason],
                quality=s.quality,
                template_id=s.template_id,
            )
            for s in view.samples
        ],
    )


def authorization_result(outcome: AuthorizationOutcome) -> types_pb2.AuthorizationResult:
    verdict = outcome.verdict
    result = types_pb2.AuthorizationResult(
        decision=_DECISION[verdict.decision],
        reason=types_pb2.DECISION_REASON_UNSPECIFIED
        if verdict.reason is None
        else _DECISION_REASON[verdict.reason],
        subject_id=verdict.subject_id,
        external_ref=outcome.external_ref,
        score_band=types_pb2.SCORE_BAND_UNSPECIFIED
        if verdict.band is None
        else _SCORE_BAND[verdict.band],
        operating_point=verdict.operating_point,
        model_id=outcome.model_id,
        token=outcome.token,
        decision_id=outcome.decision_id,
    )
    if verdict.enrolment_images or verdict.probe_images:
        result.comparison_mode.enrolment_images = verdict.enrolment_images
        result.comparison_mode.probe_images = verdict.probe_images
    if outcome.token_expires_at is not None:
        result.token_expires_at.CopyFrom(_timestamp(outcome.token_expires_at))
    return result


def subject_response(view: SubjectView) -> bioauth_pb2.GetSubjectResponse:
    response = bioauth_pb2.GetSubjectResponse(
        subject_id=view.subject_id,
        status=_STATUS[view.status],
        template_count=view.template_count,
        model_ids=list(view.model_ids),
    )
    response.enrolled_at.CopyFrom(_timestamp(view.enrolled_at))
    consent = response.consent.consent
    consent.policy_version = view.policy_version
    consent.purpose = view.purpose
    consent.identification = view.identification
    if view.channel:
        name = _CHANNEL_PREFIX + view.channel.upper()
        if name in types_pb2.ConsentChannel.keys():  # noqa: SIM118 (an enum wrapper, not a dict)
            consent.channel = types_pb2.ConsentChannel.Value(name)  # type: ignore[assignment]
    if view.consented_at is not None:
        consent.consented_at.CopyFrom(_timestamp(view.consented_at))
    if view.withdrawn_at is not None:
        response.consent.withdrawn_at.CopyFrom(_timestamp(view.withdrawn_at))
    return response


def delete_response(outcome: DeletionOutcome) -> bioauth_pb2.DeleteSubjectResponse:
    response = bioauth_pb2.DeleteSubjectResponse(
        subject_id=outcome.subject_id,
        status=bioauth_pb2.DELETION_STATUS_DONE
        if outcome.done
        else bioauth_pb2.DELETION_STATUS_PENDING,
    )
    response.withdrawn_at.CopyFrom(_timestamp(outcome.withdrawn_at))
    return response
