"""xDLMS error APDUs: ExceptionResponse (0xD8) and ConfirmedServiceError (0x0E), with their code tables."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from protocols.errors import EncodeError
from protocols.errors import ServiceError as ServiceErrorException
from protocols.xdlms.common import Reader, Writer, XdlmsTag, decode_entry, read_tag

__all__ = [
    "AccessError",
    "ApplicationReferenceError",
    "ConfirmedServiceError",
    "ConfirmedServiceErrorChoice",
    "DefinitionError",
    "ExceptionResponse",
    "ExceptionServiceError",
    "ExceptionStateError",
    "HardwareResourceError",
    "InitiateError",
    "LoadDataSetError",
    "ServiceError",
    "ServiceErrorChoice",
    "TaskError",
    "VdeStateError",
    "decode_confirmed_service_error",
    "decode_exception_response",
]


class ExceptionStateError(IntEnum):
    """``state-error`` of an ExceptionResponse."""

    SERVICE_NOT_ALLOWED = 1
    SERVICE_UNKNOWN = 2


class ExceptionServiceError(IntEnum):
    """``service-error`` CHOICE of an ExceptionResponse; invocation-counter-error carries a uint32."""

    OPERATION_NOT_POSSIBLE = 1
    SERVICE_NOT_SUPPORTED = 2
    OTHER_REASON = 3
    PDU_TOO_LONG = 4
    DECIPHERING_ERROR = 5
    INVOCATION_COUNTER_ERROR = 6


@dataclass(frozen=True, slots=True)
class ExceptionResponse:
    """The server could not even start the service (Green Book ``ExceptionResponse``).

    ``invocation_counter`` is the server's expected counter, present only with
    invocation-counter-error.
    """

    state_error: ExceptionStateError
    service_error: ExceptionServiceError
    invocation_counter: int | None = None

    def to_error(self) -> ServiceErrorException:
        """The exception to raise; a counter error is retryable once the counter is resynchronised."""
        detail = (
            f" (expected invocation counter {self.invocation_counter})" if self.invocation_counter else ""
        )
        return ServiceErrorException(
            f"exception-response {self.state_error.name.lower()}, {self.service_error.name.lower()}{detail}",
            int(self.service_error),
            retryable=self.service_error is ExceptionServiceError.INVOCATION_COUNTER_ERROR,
        )

    def encode(self) -> bytes:
        w = Writer(XdlmsTag.EXCEPTION_RESPONSE)
        w.u8(int(self.state_error), "state-error")
        w.u8(int(self.service_error), "service-error")
        counter_error = self.service_error == ExceptionServiceError.INVOCATION_COUNTER_ERROR
        if counter_error != (self.invocation_counter is not None):
            raise EncodeError("an invocation counter goes with invocation-counter-error, and only with it")
        if self.invocation_counter is not None:
            w.u32(self.invocation_counter, "invocation counter")
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> ExceptionResponse:
        return decode_exception_response(buf)

    @classmethod
    def read(cls, r: Reader) -> ExceptionResponse:
        read_tag(r, XdlmsTag.EXCEPTION_RESPONSE)
        state = ExceptionStateError(r.u8("state-error"))
        service = ExceptionServiceError(r.u8("service-error"))
        counter = (
            r.u32("invocation counter") if service is ExceptionServiceError.INVOCATION_COUNTER_ERROR else None
        )
        return cls(state, service, counter)


def decode_exception_response(buf: bytes) -> ExceptionResponse:
    """Decode a whole ExceptionResponse APDU (tag 0xD8)."""
    return decode_entry(ExceptionResponse.read, buf)


class ConfirmedServiceErrorChoice(IntEnum):
    """Which service failed (Green Book ``ConfirmedServiceError`` CHOICE)."""

    INITIATE_ERROR = 1
    GET_STATUS = 2
    GET_NAME_LIST = 3
    GET_VARIABLE_ATTRIBUTE = 4
    READ = 5
    WRITE = 6
    GET_DATA_SET_ATTRIBUTE = 7
    GET_TI_ATTRIBUTE = 8
    CHANGE_SCOPE = 9
    START = 10
    STOP = 11
    RESUME = 12
    MAKE_USABLE = 13
    INITIATE_LOAD = 14
    LOAD_SEGMENT = 15
    TERMINATE_LOAD = 16
    INITIATE_UP_LOAD = 17
    UP_LOAD_SEGMENT = 18
    TERMINATE_UP_LOAD = 19


class ServiceErrorChoice(IntEnum):
    """The kind of error (Green Book ``ServiceError`` CHOICE); each has its own ENUMERATED."""

    APPLICATION_REFERENCE = 0
    HARDWARE_RESOURCE = 1
    VDE_STATE_ERROR = 2
    SERVICE = 3
    DEFINITION = 4
    ACCESS = 5
    INITIATE = 6
    LOAD_DATA_SET = 7
    CHANGE_SCOPE = 8
    TASK = 9
    OTHER_ERROR = 10


class ApplicationReferenceError(IntEnum):
    OTHER = 0
    TIME_ELAPSED = 1
    APPLICATION_UNREACHABLE = 2
    APPLICATION_REFERENCE_INVALID = 3
    APPLICATION_CONTEXT_UNSUPPORTED = 4
    PROVIDER_COMMUNICATION_ERROR = 5
    DECIPHERING_ERROR = 6


class HardwareResourceError(IntEnum):
    OTHER = 0
    MEMORY_UNAVAILABLE = 1
    PROCESSOR_RESOURCE_UNAVAILABLE = 2
    MASS_STORAGE_UNAVAILABLE = 3
    OTHER_RESOURCE_UNAVAILABLE = 4


class VdeStateError(IntEnum):
    OTHER = 0
    NO_DLMS_CONTEXT = 1
    LOADING_DATA_SET = 2
    STATUS_NOCHANGE = 3
    STATUS_INOPERABLE = 4


class ServiceError(IntEnum):
    """The ``service`` alternative of ServiceError."""

    OTHER = 0
    PDU_SIZE = 1
    SERVICE_UNSUPPORTED = 2


class DefinitionError(IntEnum):
    OTHER = 0
    OBJECT_UNDEFINED = 1
    OBJECT_CLASS_INCONSISTENT = 2
    OBJECT_ATTRIBUTE_INCONSISTENT = 3


class AccessError(IntEnum):
    OTHER = 0
    SCOPE_OF_ACCESS_VIOLATED = 1
    OBJECT_ACCESS_VIOLATED = 2
    HARDWARE_FAULT = 3
    OBJECT_UNAVAILABLE = 4


class InitiateError(IntEnum):
    OTHER = 0
    DLMS_VERSION_TOO_LOW = 1
    INCOMPATIBLE_CONFORMANCE = 2
    PDU_SIZE_TOO_SHORT = 3
    REFUSED_BY_THE_VDE_HANDLER = 4


class LoadDataSetError(IntEnum):
    OTHER = 0
    PRIMITIVE_OUT_OF_SEQUENCE = 1
    NOT_LOADABLE = 2
    DATASET_SIZE_TOO_LARGE = 3
    NOT_AWAITED_SEGMENT = 4
    INTERPRETATION_FAILURE = 5
    STORAGE_FAILURE = 6
    DATA_SET_NOT_READY = 7


class TaskError(IntEnum):
    OTHER = 0
    NO_REMOTE_CONTROL = 1
    TI_STOPPED = 2
    TI_RUNNING = 3
    TI_UNUSABLE = 4


_DETAILS: dict[ServiceErrorChoice, type[IntEnum]] = {
    ServiceErrorChoice.APPLICATION_REFERENCE: ApplicationReferenceError,
    ServiceErrorChoice.HARDWARE_RESOURCE: HardwareResourceError,
    ServiceErrorChoice.VDE_STATE_ERROR: VdeStateError,
    ServiceErrorChoice.SERVICE: ServiceError,
    ServiceErrorChoice.DEFINITION: DefinitionError,
    ServiceErrorChoice.ACCESS: AccessError,
    ServiceErrorChoice.INITIATE: InitiateError,
    ServiceErrorChoice.LOAD_DATA_SET: LoadDataSetError,
    ServiceErrorChoice.TASK: TaskError,
}


@dataclass(frozen=True, slots=True)
class ConfirmedServiceError:
    """A confirmed service failed: which service, which kind of error, and the kind's code.

    ``value`` stays an int so that codes outside the known tables still decode; ``detail``
    gives the matching enum member when there is one.
    """

    service: ConfirmedServiceErrorChoice
    error: ServiceErrorChoice
    value: int

    @property
    def initiate_error(self) -> InitiateError | None:
        """The InitiateError when this refuses an association (error kind ``initiate``)."""
        if self.error is not ServiceErrorChoice.INITIATE:
            return None
        try:
            return InitiateError(self.value)
        except ValueError:
            return None

    @property
    def detail(self) -> IntEnum | int:
        table = _DETAILS.get(self.error)
        if table is None:
            return self.value
        try:
            return table(self.value)
        except ValueError:
            return self.value

    def to_error(self) -> ServiceErrorException:
        detail = self.detail
        name = detail.name.lower() if isinstance(detail, IntEnum) else str(detail)
        return ServiceErrorException(
            f"confirmed-service-error {self.service.name.lower()}: {self.error.name.lower()} {name}",
            self.value,
        )

    def encode(self) -> bytes:
        w = Writer(XdlmsTag.CONFIRMED_SERVICE_ERROR)
        w.u8(int(self.service), "confirmed-service-error choice")
        w.u8(int(self.error), "service-error choice")
        w.u8(self.value, "service-error value")
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> ConfirmedServiceError:
        return decode_confirmed_service_error(buf)

    @classmethod
    def read(cls, r: Reader) -> ConfirmedServiceError:
        read_tag(r, XdlmsTag.CONFIRMED_SERVICE_ERROR)
        service = ConfirmedServiceErrorChoice(r.u8("confirmed-service-error choice"))
        error = ServiceErrorChoice(r.u8("service-error choice"))
        return cls(service, error, r.u8("service-error value"))


def decode_confirmed_service_error(buf: bytes) -> ConfirmedServiceError:
    """Decode a whole ConfirmedServiceError APDU (tag 0x0E)."""
    return decode_entry(ConfirmedServiceError.read, buf)
