import datetime

from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TicketStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TICKET_STATUS_UNSPECIFIED: _ClassVar[TicketStatus]
    TICKET_STATUS_NEW: _ClassVar[TicketStatus]
    TICKET_STATUS_OPEN: _ClassVar[TicketStatus]
    TICKET_STATUS_PENDING: _ClassVar[TicketStatus]
    TICKET_STATUS_RESOLVED: _ClassVar[TicketStatus]
    TICKET_STATUS_CLOSED: _ClassVar[TicketStatus]

class Priority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRIORITY_UNSPECIFIED: _ClassVar[Priority]
    PRIORITY_LOW: _ClassVar[Priority]
    PRIORITY_NORMAL: _ClassVar[Priority]
    PRIORITY_HIGH: _ClassVar[Priority]
    PRIORITY_URGENT: _ClassVar[Priority]

class Plan(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PLAN_UNSPECIFIED: _ClassVar[Plan]
    PLAN_FREE: _ClassVar[Plan]
    PLAN_TEAM: _ClassVar[Plan]
    PLAN_ENTERPRISE: _ClassVar[Plan]
TICKET_STATUS_UNSPECIFIED: TicketStatus
TICKET_STATUS_NEW: TicketStatus
TICKET_STATUS_OPEN: TicketStatus
TICKET_STATUS_PENDING: TicketStatus
TICKET_STATUS_RESOLVED: TicketStatus
TICKET_STATUS_CLOSED: TicketStatus
PRIORITY_UNSPECIFIED: Priority
PRIORITY_LOW: Priority
PRIORITY_NORMAL: Priority
PRIORITY_HIGH: Priority
PRIORITY_URGENT: Priority
PLAN_UNSPECIFIED: Plan
PLAN_FREE: Plan
PLAN_TEAM: Plan
PLAN_ENTERPRISE: Plan

class Customer(_message.Message):
    __slots__ = ("id", "name", "contact_email", "plan")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONTACT_EMAIL_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    contact_email: str
    plan: Plan
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., contact_email: _Optional[str] = ..., plan: _Optional[_Union[Plan, str]] = ...) -> None: ...

class Comment(_message.Message):
    __slots__ = ("id", "author", "body", "internal", "create_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    INTERNAL_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    author: str
    body: str
    internal: bool
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., author: _Optional[str] = ..., body: _Optional[str] = ..., internal: _Optional[bool] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Ticket(_message.Message):
    __slots__ = ("id", "subject", "description", "customer_id", "status", "priority", "assignee", "tags", "create_time", "update_time", "comment_count", "comments")
    ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ASSIGNEE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    COMMENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    COMMENTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    subject: str
    description: str
    customer_id: str
    status: TicketStatus
    priority: Priority
    assignee: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    comment_count: int
    comments: _containers.RepeatedCompositeFieldContainer[Comment]
    def __init__(self, id: _Optional[str] = ..., subject: _Optional[str] = ..., description: _Optional[str] = ..., customer_id: _Optional[str] = ..., status: _Optional[_Union[TicketStatus, str]] = ..., priority: _Optional[_Union[Priority, str]] = ..., assignee: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., comment_count: _Optional[int] = ..., comments: _Optional[_Iterable[_Union[Comment, _Mapping]]] = ...) -> None: ...

class GetTicketRequest(_message.Message):
    __slots__ = ("ticket_id",)
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    def __init__(self, ticket_id: _Optional[str] = ...) -> None: ...

class SearchTicketsRequest(_message.Message):
    __slots__ = ("query", "customer_id", "status", "priority", "limit")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    query: str
    customer_id: str
    status: TicketStatus
    priority: Priority
    limit: int
    def __init__(self, query: _Optional[str] = ..., customer_id: _Optional[str] = ..., status: _Optional[_Union[TicketStatus, str]] = ..., priority: _Optional[_Union[Priority, str]] = ..., limit: _Optional[int] = ...) -> None: ...

class SearchTicketsResponse(_message.Message):
    __slots__ = ("tickets", "total_size")
    TICKETS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    tickets: _containers.RepeatedCompositeFieldContainer[Ticket]
    total_size: int
    def __init__(self, tickets: _Optional[_Iterable[_Union[Ticket, _Mapping]]] = ..., total_size: _Optional[int] = ...) -> None: ...

class CountTicketsRequest(_message.Message):
    __slots__ = ("customer_id", "priority")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    priority: Priority
    def __init__(self, customer_id: _Optional[str] = ..., priority: _Optional[_Union[Priority, str]] = ...) -> None: ...

class StatusCount(_message.Message):
    __slots__ = ("status", "count")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    status: TicketStatus
    count: int
    def __init__(self, status: _Optional[_Union[TicketStatus, str]] = ..., count: _Optional[int] = ...) -> None: ...

class CountTicketsResponse(_message.Message):
    __slots__ = ("by_status", "total", "unresolved")
    BY_STATUS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    UNRESOLVED_FIELD_NUMBER: _ClassVar[int]
    by_status: _containers.RepeatedCompositeFieldContainer[StatusCount]
    total: int
    unresolved: int
    def __init__(self, by_status: _Optional[_Iterable[_Union[StatusCount, _Mapping]]] = ..., total: _Optional[int] = ..., unresolved: _Optional[int] = ...) -> None: ...

class FindCustomersRequest(_message.Message):
    __slots__ = ("query",)
    QUERY_FIELD_NUMBER: _ClassVar[int]
    query: str
    def __init__(self, query: _Optional[str] = ...) -> None: ...

class FindCustomersResponse(_message.Message):
    __slots__ = ("customers",)
    CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    customers: _containers.RepeatedCompositeFieldContainer[Customer]
    def __init__(self, customers: _Optional[_Iterable[_Union[Customer, _Mapping]]] = ...) -> None: ...

class AddCommentRequest(_message.Message):
    __slots__ = ("ticket_id", "body", "internal")
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    INTERNAL_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    body: str
    internal: bool
    def __init__(self, ticket_id: _Optional[str] = ..., body: _Optional[str] = ..., internal: _Optional[bool] = ...) -> None: ...

class ChangeStatusRequest(_message.Message):
    __slots__ = ("ticket_id", "status")
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    status: TicketStatus
    def __init__(self, ticket_id: _Optional[str] = ..., status: _Optional[_Union[TicketStatus, str]] = ...) -> None: ...

class DeleteTicketRequest(_message.Message):
    __slots__ = ("ticket_id",)
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    def __init__(self, ticket_id: _Optional[str] = ...) -> None: ...

class DeleteTicketResponse(_message.Message):
    __slots__ = ("ticket_id",)
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    def __init__(self, ticket_id: _Optional[str] = ...) -> None: ...
