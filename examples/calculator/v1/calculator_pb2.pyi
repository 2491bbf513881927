from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class EvaluateRequest(_message.Message):
    __slots__ = ("expression", "precision")
    EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    expression: str
    precision: int
    def __init__(self, expression: _Optional[str] = ..., precision: _Optional[int] = ...) -> None: ...

class EvaluateResponse(_message.Message):
    __slots__ = ("value", "formatted", "steps")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    FORMATTED_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    value: float
    formatted: str
    steps: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, value: _Optional[float] = ..., formatted: _Optional[str] = ..., steps: _Optional[_Iterable[str]] = ...) -> None: ...
