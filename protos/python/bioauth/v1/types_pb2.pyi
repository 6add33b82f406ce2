import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Limits(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LIMITS_UNSPECIFIED: _ClassVar[Limits]
    MAX_IMAGES_PER_REQUEST: _ClassVar[Limits]
    MAX_FRAMES_PER_SESSION: _ClassVar[Limits]
    MAX_ENCODED_IMAGE_BYTES: _ClassVar[Limits]
    MAX_IMAGE_SIDE_PIXELS: _ClassVar[Limits]
    MIN_IMAGE_SIDE_PIXELS: _ClassVar[Limits]
    MAX_ID_LENGTH: _ClassVar[Limits]

class ConsentChannel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONSENT_CHANNEL_UNSPECIFIED: _ClassVar[ConsentChannel]
    CONSENT_CHANNEL_MOBILE_APP: _ClassVar[ConsentChannel]
    CONSENT_CHANNEL_BANK_BRANCH: _ClassVar[ConsentChannel]
    CONSENT_CHANNEL_TERMINAL: _ClassVar[ConsentChannel]
    CONSENT_CHANNEL_WEB: _ClassVar[ConsentChannel]

class SampleRejectReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SAMPLE_REJECT_REASON_UNSPECIFIED: _ClassVar[SampleRejectReason]
    SAMPLE_REJECT_REASON_UNREADABLE: _ClassVar[SampleRejectReason]
    SAMPLE_REJECT_REASON_TOO_SMALL: _ClassVar[SampleRejectReason]
    SAMPLE_REJECT_REASON_TOO_BLURRED: _ClassVar[SampleRejectReason]
    SAMPLE_REJECT_REASON_NO_FACE: _ClassVar[SampleRejectReason]
    SAMPLE_REJECT_REASON_MULTIPLE_FACES: _ClassVar[SampleRejectReason]
    SAMPLE_REJECT_REASON_POOR_POSE: _ClassVar[SampleRejectReason]
    SAMPLE_REJECT_REASON_IMPLAUSIBLE_EMBEDDING: _ClassVar[SampleRejectReason]
    SAMPLE_REJECT_REASON_PRESENTATION_ATTACK: _ClassVar[SampleRejectReason]
    SAMPLE_REJECT_REASON_TOO_DARK: _ClassVar[SampleRejectReason]

class FrameRejectReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FRAME_REJECT_REASON_UNSPECIFIED: _ClassVar[FrameRejectReason]
    FRAME_REJECT_REASON_UNREADABLE: _ClassVar[FrameRejectReason]
    FRAME_REJECT_REASON_TOO_SMALL: _ClassVar[FrameRejectReason]
    FRAME_REJECT_REASON_TOO_BLURRED: _ClassVar[FrameRejectReason]
    FRAME_REJECT_REASON_NO_FACE: _ClassVar[FrameRejectReason]
    FRAME_REJECT_REASON_MULTIPLE_FACES: _ClassVar[FrameRejectReason]
    FRAME_REJECT_REASON_POOR_POSE: _ClassVar[FrameRejectReason]
    FRAME_REJECT_REASON_IMPLAUSIBLE_EMBEDDING: _ClassVar[FrameRejectReason]
    FRAME_REJECT_REASON_PRESENTATION_ATTACK: _ClassVar[FrameRejectReason]
    FRAME_REJECT_REASON_TOO_DARK: _ClassVar[FrameRejectReason]
    FRAME_REJECT_REASON_DUPLICATE: _ClassVar[FrameRejectReason]
    FRAME_REJECT_REASON_OVER_BUDGET: _ClassVar[FrameRejectReason]

class Decision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_UNSPECIFIED: _ClassVar[Decision]
    DECISION_APPROVE: _ClassVar[Decision]
    DECISION_DECLINE: _ClassVar[Decision]
    DECISION_NO_MATCH: _ClassVar[Decision]
    DECISION_AMBIGUOUS: _ClassVar[Decision]
    DECISION_RETRY: _ClassVar[Decision]

class DecisionReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_REASON_UNSPECIFIED: _ClassVar[DecisionReason]
    DECISION_REASON_SCORE_BELOW_THRESHOLD: _ClassVar[DecisionReason]
    DECISION_REASON_NO_CANDIDATE: _ClassVar[DecisionReason]
    DECISION_REASON_RUNNER_UP_TOO_CLOSE: _ClassVar[DecisionReason]
    DECISION_REASON_NO_USABLE_PROBE: _ClassVar[DecisionReason]
    DECISION_REASON_MORE_FRAMES_NEEDED: _ClassVar[DecisionReason]
    DECISION_REASON_NO_OPERATING_POINT: _ClassVar[DecisionReason]
    DECISION_REASON_SESSION_BUDGET_SPENT: _ClassVar[DecisionReason]
    DECISION_REASON_EMPTY_GALLERY: _ClassVar[DecisionReason]
    DECISION_REASON_PRESENTATION_ATTACK: _ClassVar[DecisionReason]
    DECISION_REASON_QUALITY_TOO_LOW: _ClassVar[DecisionReason]

class ScoreBand(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCORE_BAND_UNSPECIFIED: _ClassVar[ScoreBand]
    SCORE_BAND_VERY_HIGH: _ClassVar[ScoreBand]
    SCORE_BAND_HIGH: _ClassVar[ScoreBand]
    SCORE_BAND_LOW: _ClassVar[ScoreBand]
    SCORE_BAND_VERY_LOW: _ClassVar[ScoreBand]
LIMITS_UNSPECIFIED: Limits
MAX_IMAGES_PER_REQUEST: Limits
MAX_FRAMES_PER_SESSION: Limits
MAX_ENCODED_IMAGE_BYTES: Limits
MAX_IMAGE_SIDE_PIXELS: Limits
MIN_IMAGE_SIDE_PIXELS: Limits
MAX_ID_LENGTH: Limits
CONSENT_CHANNEL_UNSPECIFIED: ConsentChannel
CONSENT_CHANNEL_MOBILE_APP: ConsentChannel
CONSENT_CHANNEL_BANK_BRANCH: ConsentChannel
CONSENT_CHANNEL_TERMINAL: ConsentChannel
CONSENT_CHANNEL_WEB: ConsentChannel
SAMPLE_REJECT_REASON_UNSPECIFIED: SampleRejectReason
SAMPLE_REJECT_REASON_UNREADABLE: SampleRejectReason
SAMPLE_REJECT_REASON_TOO_SMALL: SampleRejectReason
SAMPLE_REJECT_REASON_TOO_BLURRED: SampleRejectReason
SAMPLE_REJECT_REASON_NO_FACE: SampleRejectReason
SAMPLE_REJECT_REASON_MULTIPLE_FACES: SampleRejectReason
SAMPLE_REJECT_REASON_POOR_POSE: SampleRejectReason
SAMPLE_REJECT_REASON_IMPLAUSIBLE_EMBEDDING: SampleRejectReason
SAMPLE_REJECT_REASON_PRESENTATION_ATTACK: SampleRejectReason
SAMPLE_REJECT_REASON_TOO_DARK: SampleRejectReason
FRAME_REJECT_REASON_UNSPECIFIED: FrameRejectReason
FRAME_REJECT_REASON_UNREADABLE: FrameRejectReason
FRAME_REJECT_REASON_TOO_SMALL: FrameRejectReason
FRAME_REJECT_REASON_TOO_BLURRED: FrameRejectReason
FRAME_REJECT_REASON_NO_FACE: FrameRejectReason
FRAME_REJECT_REASON_MULTIPLE_FACES: FrameRejectReason
FRAME_REJECT_REASON_POOR_POSE: FrameRejectReason
FRAME_REJECT_REASON_IMPLAUSIBLE_EMBEDDING: FrameRejectReason
FRAME_REJECT_REASON_PRESENTATION_ATTACK: FrameRejectReason
FRAME_REJECT_REASON_TOO_DARK: FrameRejectReason
FRAME_REJECT_REASON_DUPLICATE: FrameRejectReason
FRAME_REJECT_REASON_OVER_BUDGET: FrameRejectReason
DECISION_UNSPECIFIED: Decision
DECISION_APPROVE: Decision
DECISION_DECLINE: Decision
DECISION_NO_MATCH: Decision
DECISION_AMBIGUOUS: Decision
DECISION_RETRY: Decision
DECISION_REASON_UNSPECIFIED: DecisionReason
DECISION_REASON_SCORE_BELOW_THRESHOLD: DecisionReason
DECISION_REASON_NO_CANDIDATE: DecisionReason
DECISION_REASON_RUNNER_UP_TOO_CLOSE: DecisionReason
DECISION_REASON_NO_USABLE_PROBE: DecisionReason
DECISION_REASON_MORE_FRAMES_NEEDED: DecisionReason
DECISION_REASON_NO_OPERATING_POINT: DecisionReason
DECISION_REASON_SESSION_BUDGET_SPENT: DecisionReason
DECISION_REASON_EMPTY_GALLERY: DecisionReason
DECISION_REASON_PRESENTATION_ATTACK: DecisionReason
DECISION_REASON_QUALITY_TOO_LOW: DecisionReason
SCORE_BAND_UNSPECIFIED: ScoreBand
SCORE_BAND_VERY_HIGH: ScoreBand
SCORE_BAND_HIGH: ScoreBand
SCORE_BAND_LOW: ScoreBand
SCORE_BAND_VERY_LOW: ScoreBand

class FaceImage(_message.Message):
    __slots__ = ("encoded", "raw")
    ENCODED_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    encoded: bytes
    raw: RawImage
    def __init__(self, encoded: _Optional[bytes] = ..., raw: _Optional[_Union[RawImage, _Mapping]] = ...) -> None: ...

class RawImage(_message.Message):
    __slots__ = ("rgb8", "width", "height")
    RGB8_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    rgb8: bytes
    width: int
    height: int
    def __init__(self, rgb8: _Optional[bytes] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class SubjectRef(_message.Message):
    __slots__ = ("external_ref",)
    EXTERNAL_REF_FIELD_NUMBER: _ClassVar[int]
    external_ref: str
    def __init__(self, external_ref: _Optional[str] = ...) -> None: ...

class Consent(_message.Message):
    __slots__ = ("policy_version", "consented_at", "channel", "purpose", "identification")
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONSENTED_AT_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    IDENTIFICATION_FIELD_NUMBER: _ClassVar[int]
    policy_version: str
    consented_at: _timestamp_pb2.Timestamp
    channel: ConsentChannel
    purpose: str
    identification: bool
    def __init__(self, policy_version: _Optional[str] = ..., consented_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., channel: _Optional[_Union[ConsentChannel, str]] = ..., purpose: _Optional[str] = ..., identification: _Optional[bool] = ...) -> None: ...

class TransactionContext(_message.Message):
    __slots__ = ("transaction_id", "merchant_id", "terminal_id", "amount_minor", "currency", "timestamp", "nonce")
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    transaction_id: str
    merchant_id: str
    terminal_id: str
    amount_minor: int
    currency: str
    timestamp: _timestamp_pb2.Timestamp
    nonce: str
    def __init__(self, transaction_id: _Optional[str] = ..., merchant_id: _Optional[str] = ..., terminal_id: _Optional[str] = ..., amount_minor: _Optional[int] = ..., currency: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., nonce: _Optional[str] = ...) -> None: ...

class ComparisonMode(_message.Message):
    __slots__ = ("enrolment_images", "probe_images")
    ENROLMENT_IMAGES_FIELD_NUMBER: _ClassVar[int]
    PROBE_IMAGES_FIELD_NUMBER: _ClassVar[int]
    enrolment_images: int
    probe_images: int
    def __init__(self, enrolment_images: _Optional[int] = ..., probe_images: _Optional[int] = ...) -> None: ...

class AuthorizationResult(_message.Message):
    __slots__ = ("decision", "reason", "subject_id", "external_ref", "score_band", "operating_point", "comparison_mode", "model_id", "token", "token_expires_at", "decision_id")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_REF_FIELD_NUMBER: _ClassVar[int]
    SCORE_BAND_FIELD_NUMBER: _ClassVar[int]
    OPERATING_POINT_FIELD_NUMBER: _ClassVar[int]
    COMPARISON_MODE_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOKEN_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    reason: DecisionReason
    subject_id: str
    external_ref: str
    score_band: ScoreBand
    operating_point: str
    comparison_mode: ComparisonMode
    model_id: str
    token: str
    token_expires_at: _timestamp_pb2.Timestamp
    decision_id: str
    def __init__(self, decision: _Optional[_Union[Decision, str]] = ..., reason: _Optional[_Union[DecisionReason, str]] = ..., subject_id: _Optional[str] = ..., external_ref: _Optional[str] = ..., score_band: _Optional[_Union[ScoreBand, str]] = ..., operating_point: _Optional[str] = ..., comparison_mode: _Optional[_Union[ComparisonMode, _Mapping]] = ..., model_id: _Optional[str] = ..., token: _Optional[str] = ..., token_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., decision_id: _Optional[str] = ...) -> None: ...
