import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from bioauth.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AuthenticationMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUTHENTICATION_MODE_UNSPECIFIED: _ClassVar[AuthenticationMode]
    AUTHENTICATION_MODE_VERIFY: _ClassVar[AuthenticationMode]
    AUTHENTICATION_MODE_IDENTIFY: _ClassVar[AuthenticationMode]

class DeletionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELETION_STATUS_UNSPECIFIED: _ClassVar[DeletionStatus]
    DELETION_STATUS_DONE: _ClassVar[DeletionStatus]
    DELETION_STATUS_PENDING: _ClassVar[DeletionStatus]

class EnrolmentStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENROLMENT_STATUS_UNSPECIFIED: _ClassVar[EnrolmentStatus]
    ENROLMENT_STATUS_ENROLLED: _ClassVar[EnrolmentStatus]
    ENROLMENT_STATUS_OPT_OUT_PENDING: _ClassVar[EnrolmentStatus]
    ENROLMENT_STATUS_OPTED_OUT: _ClassVar[EnrolmentStatus]
AUTHENTICATION_MODE_UNSPECIFIED: AuthenticationMode
AUTHENTICATION_MODE_VERIFY: AuthenticationMode
AUTHENTICATION_MODE_IDENTIFY: AuthenticationMode
DELETION_STATUS_UNSPECIFIED: DeletionStatus
DELETION_STATUS_DONE: DeletionStatus
DELETION_STATUS_PENDING: DeletionStatus
ENROLMENT_STATUS_UNSPECIFIED: EnrolmentStatus
ENROLMENT_STATUS_ENROLLED: EnrolmentStatus
ENROLMENT_STATUS_OPT_OUT_PENDING: EnrolmentStatus
ENROLMENT_STATUS_OPTED_OUT: EnrolmentStatus

class EnrollRequest(_message.Message):
    __slots__ = ("subject", "consent", "samples", "idempotency_key")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    subject: _types_pb2.SubjectRef
    consent: _types_pb2.Consent
    samples: _containers.RepeatedCompositeFieldContainer[_types_pb2.FaceImage]
    idempotency_key: str
    def __init__(self, subject: _Optional[_Union[_types_pb2.SubjectRef, _Mapping]] = ..., consent: _Optional[_Union[_types_pb2.Consent, _Mapping]] = ..., samples: _Optional[_Iterable[_Union[_types_pb2.FaceImage, _Mapping]]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class SampleResult(_message.Message):
    __slots__ = ("index", "accepted", "reason", "quality", "template_id")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    index: int
    accepted: bool
    reason: _types_pb2.SampleRejectReason
    quality: float
    template_id: str
    def __init__(self, index: _Optional[int] = ..., accepted: _Optional[bool] = ..., reason: _Optional[_Union[_types_pb2.SampleRejectReason, str]] = ..., quality: _Optional[float] = ..., template_id: _Optional[str] = ...) -> None: ...

class EnrollResponse(_message.Message):
    __slots__ = ("subject_id", "samples", "model_id", "template_count")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_COUNT_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    samples: _containers.RepeatedCompositeFieldContainer[SampleResult]
    model_id: str
    template_count: int
    def __init__(self, subject_id: _Optional[str] = ..., samples: _Optional[_Iterable[_Union[SampleResult, _Mapping]]] = ..., model_id: _Optional[str] = ..., template_count: _Optional[int] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ("subject", "probes", "transaction")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    PROBES_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    subject: _types_pb2.SubjectRef
    probes: _containers.RepeatedCompositeFieldContainer[_types_pb2.FaceImage]
    transaction: _types_pb2.TransactionContext
    def __init__(self, subject: _Optional[_Union[_types_pb2.SubjectRef, _Mapping]] = ..., probes: _Optional[_Iterable[_Union[_types_pb2.FaceImage, _Mapping]]] = ..., transaction: _Optional[_Union[_types_pb2.TransactionContext, _Mapping]] = ...) -> None: ...

class IdentifyRequest(_message.Message):
    __slots__ = ("probes", "transaction")
    PROBES_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    probes: _containers.RepeatedCompositeFieldContainer[_types_pb2.FaceImage]
    transaction: _types_pb2.TransactionContext
    def __init__(self, probes: _Optional[_Iterable[_Union[_types_pb2.FaceImage, _Mapping]]] = ..., transaction: _Optional[_Union[_types_pb2.TransactionContext, _Mapping]] = ...) -> None: ...

class SessionOpen(_message.Message):
    __slots__ = ("mode", "subject", "transaction", "max_frames")
    MODE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    MAX_FRAMES_FIELD_NUMBER: _ClassVar[int]
    mode: AuthenticationMode
    subject: _types_pb2.SubjectRef
    transaction: _types_pb2.TransactionContext
    max_frames: int
    def __init__(self, mode: _Optional[_Union[AuthenticationMode, str]] = ..., subject: _Optional[_Union[_types_pb2.SubjectRef, _Mapping]] = ..., transaction: _Optional[_Union[_types_pb2.TransactionContext, _Mapping]] = ..., max_frames: _Optional[int] = ...) -> None: ...

class Frame(_message.Message):
    __slots__ = ("sequence", "image")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    image: _types_pb2.FaceImage
    def __init__(self, sequence: _Optional[int] = ..., image: _Optional[_Union[_types_pb2.FaceImage, _Mapping]] = ...) -> None: ...

class AuthenticateRequest(_message.Message):
    __slots__ = ("open", "frame")
    OPEN_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    open: SessionOpen
    frame: Frame
    def __init__(self, open: _Optional[_Union[SessionOpen, _Mapping]] = ..., frame: _Optional[_Union[Frame, _Mapping]] = ...) -> None: ...

class FrameResult(_message.Message):
    __slots__ = ("sequence", "accepted", "reason")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    accepted: bool
    reason: _types_pb2.FrameRejectReason
    def __init__(self, sequence: _Optional[int] = ..., accepted: _Optional[bool] = ..., reason: _Optional[_Union[_types_pb2.FrameRejectReason, str]] = ...) -> None: ...

class AuthenticateResponse(_message.Message):
    __slots__ = ("frame_result", "result")
    FRAME_RESULT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    frame_result: FrameResult
    result: _types_pb2.AuthorizationResult
    def __init__(self, frame_result: _Optional[_Union[FrameResult, _Mapping]] = ..., result: _Optional[_Union[_types_pb2.AuthorizationResult, _Mapping]] = ...) -> None: ...

class DeleteSubjectRequest(_message.Message):
    __slots__ = ("subject",)
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    subject: _types_pb2.SubjectRef
    def __init__(self, subject: _Optional[_Union[_types_pb2.SubjectRef, _Mapping]] = ...) -> None: ...

class DeleteSubjectResponse(_message.Message):
    __slots__ = ("subject_id", "status", "withdrawn_at")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    WITHDRAWN_AT_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    status: DeletionStatus
    withdrawn_at: _timestamp_pb2.Timestamp
    def __init__(self, subject_id: _Optional[str] = ..., status: _Optional[_Union[DeletionStatus, str]] = ..., withdrawn_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetSubjectRequest(_message.Message):
    __slots__ = ("subject",)
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    subject: _types_pb2.SubjectRef
    def __init__(self, subject: _Optional[_Union[_types_pb2.SubjectRef, _Mapping]] = ...) -> None: ...

class ConsentRecord(_message.Message):
    __slots__ = ("consent", "withdrawn_at")
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    WITHDRAWN_AT_FIELD_NUMBER: _ClassVar[int]
    consent: _types_pb2.Consent
    withdrawn_at: _timestamp_pb2.Timestamp
    def __init__(self, consent: _Optional[_Union[_types_pb2.Consent, _Mapping]] = ..., withdrawn_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetSubjectResponse(_message.Message):
    __slots__ = ("subject_id", "status", "template_count", "model_ids", "consent", "enrolled_at")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_COUNT_FIELD_NUMBER: _ClassVar[int]
    MODEL_IDS_FIELD_NUMBER: _ClassVar[int]
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    ENROLLED_AT_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    status: EnrolmentStatus
    template_count: int
    model_ids: _containers.RepeatedScalarFieldContainer[str]
    consent: ConsentRecord
    enrolled_at: _timestamp_pb2.Timestamp
    def __init__(self, subject_id: _Optional[str] = ..., status: _Optional[_Union[EnrolmentStatus, str]] = ..., template_count: _Optional[int] = ..., model_ids: _Optional[_Iterable[str]] = ..., consent: _Optional[_Union[ConsentRecord, _Mapping]] = ..., enrolled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetJwksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetJwksResponse(_message.Message):
    __slots__ = ("jwks_json", "max_age_seconds")
    JWKS_JSON_FIELD_NUMBER: _ClassVar[int]
    MAX_AGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    jwks_json: str
    max_age_seconds: int
    def __init__(self, jwks_json: _Optional[str] = ..., max_age_seconds: _Optional[int] = ...) -> None: ...
