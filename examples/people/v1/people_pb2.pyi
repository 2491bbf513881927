from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.type import date_pb2 as _date_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EmploymentType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EMPLOYMENT_TYPE_UNSPECIFIED: _ClassVar[EmploymentType]
    EMPLOYMENT_TYPE_FULL_TIME: _ClassVar[EmploymentType]
    EMPLOYMENT_TYPE_PART_TIME: _ClassVar[EmploymentType]
    EMPLOYMENT_TYPE_CONTRACTOR: _ClassVar[EmploymentType]
    EMPLOYMENT_TYPE_INTERN: _ClassVar[EmploymentType]

class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STATUS_UNSPECIFIED: _ClassVar[Status]
    STATUS_ACTIVE: _ClassVar[Status]
    STATUS_ON_LEAVE: _ClassVar[Status]
    STATUS_TERMINATED: _ClassVar[Status]
EMPLOYMENT_TYPE_UNSPECIFIED: EmploymentType
EMPLOYMENT_TYPE_FULL_TIME: EmploymentType
EMPLOYMENT_TYPE_PART_TIME: EmploymentType
EMPLOYMENT_TYPE_CONTRACTOR: EmploymentType
EMPLOYMENT_TYPE_INTERN: EmploymentType
STATUS_UNSPECIFIED: Status
STATUS_ACTIVE: Status
STATUS_ON_LEAVE: Status
STATUS_TERMINATED: Status

class Office(_message.Message):
    __slots__ = ("building", "floor", "desk")
    BUILDING_FIELD_NUMBER: _ClassVar[int]
    FLOOR_FIELD_NUMBER: _ClassVar[int]
    DESK_FIELD_NUMBER: _ClassVar[int]
    building: str
    floor: int
    desk: str
    def __init__(self, building: _Optional[str] = ..., floor: _Optional[int] = ..., desk: _Optional[str] = ...) -> None: ...

class Contact(_message.Message):
    __slots__ = ("email", "phone", "office")
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    OFFICE_FIELD_NUMBER: _ClassVar[int]
    email: str
    phone: str
    office: Office
    def __init__(self, email: _Optional[str] = ..., phone: _Optional[str] = ..., office: _Optional[_Union[Office, _Mapping]] = ...) -> None: ...

class Person(_message.Message):
    __slots__ = ("id", "full_name", "title", "department_id", "manager_id", "employment_type", "status", "contact", "skills", "reports", "start_date")
    ID_FIELD_NUMBER: _ClassVar[int]
    FULL_NAME_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_ID_FIELD_NUMBER: _ClassVar[int]
    MANAGER_ID_FIELD_NUMBER: _ClassVar[int]
    EMPLOYMENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    SKILLS_FIELD_NUMBER: _ClassVar[int]
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    id: str
    full_name: str
    title: str
    department_id: str
    manager_id: str
    employment_type: EmploymentType
    status: Status
    contact: Contact
    skills: _containers.RepeatedScalarFieldContainer[str]
    reports: _containers.RepeatedScalarFieldContainer[str]
    start_date: _date_pb2.Date
    def __init__(self, id: _Optional[str] = ..., full_name: _Optional[str] = ..., title: _Optional[str] = ..., department_id: _Optional[str] = ..., manager_id: _Optional[str] = ..., employment_type: _Optional[_Union[EmploymentType, str]] = ..., status: _Optional[_Union[Status, str]] = ..., contact: _Optional[_Union[Contact, _Mapping]] = ..., skills: _Optional[_Iterable[str]] = ..., reports: _Optional[_Iterable[str]] = ..., start_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ...) -> None: ...

class GetPersonRequest(_message.Message):
    __slots__ = ("person_id",)
    PERSON_ID_FIELD_NUMBER: _ClassVar[int]
    person_id: str
    def __init__(self, person_id: _Optional[str] = ...) -> None: ...

class SearchPeopleRequest(_message.Message):
    __slots__ = ("query", "department_id", "skill", "limit")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SKILL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    query: str
    department_id: str
    skill: str
    limit: int
    def __init__(self, query: _Optional[str] = ..., department_id: _Optional[str] = ..., skill: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class SearchPeopleResponse(_message.Message):
    __slots__ = ("people", "total_size")
    PEOPLE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    people: _containers.RepeatedCompositeFieldContainer[Person]
    total_size: int
    def __init__(self, people: _Optional[_Iterable[_Union[Person, _Mapping]]] = ..., total_size: _Optional[int] = ...) -> None: ...

class ListPeopleRequest(_message.Message):
    __slots__ = ("department_id", "employment_type", "status", "building")
    DEPARTMENT_ID_FIELD_NUMBER: _ClassVar[int]
    EMPLOYMENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    BUILDING_FIELD_NUMBER: _ClassVar[int]
    department_id: str
    employment_type: EmploymentType
    status: Status
    building: str
    def __init__(self, department_id: _Optional[str] = ..., employment_type: _Optional[_Union[EmploymentType, str]] = ..., status: _Optional[_Union[Status, str]] = ..., building: _Optional[str] = ...) -> None: ...

class GetDepartmentRequest(_message.Message):
    __slots__ = ("department_id",)
    DEPARTMENT_ID_FIELD_NUMBER: _ClassVar[int]
    department_id: str
    def __init__(self, department_id: _Optional[str] = ...) -> None: ...

class Count(_message.Message):
    __slots__ = ("key", "count")
    KEY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    key: str
    count: int
    def __init__(self, key: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class Department(_message.Message):
    __slots__ = ("id", "name", "head_id", "head_name", "head_count", "by_employment_type", "by_status", "main_building")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    HEAD_ID_FIELD_NUMBER: _ClassVar[int]
    HEAD_NAME_FIELD_NUMBER: _ClassVar[int]
    HEAD_COUNT_FIELD_NUMBER: _ClassVar[int]
    BY_EMPLOYMENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    BY_STATUS_FIELD_NUMBER: _ClassVar[int]
    MAIN_BUILDING_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    head_id: str
    head_name: str
    head_count: int
    by_employment_type: _containers.RepeatedCompositeFieldContainer[Count]
    by_status: _containers.RepeatedCompositeFieldContainer[Count]
    main_building: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., head_id: _Optional[str] = ..., head_name: _Optional[str] = ..., head_count: _Optional[int] = ..., by_employment_type: _Optional[_Iterable[_Union[Count, _Mapping]]] = ..., by_status: _Optional[_Iterable[_Union[Count, _Mapping]]] = ..., main_building: _Optional[str] = ...) -> None: ...

class ListDepartmentsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListDepartmentsResponse(_message.Message):
    __slots__ = ("departments", "total_head_count")
    DEPARTMENTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_HEAD_COUNT_FIELD_NUMBER: _ClassVar[int]
    departments: _containers.RepeatedCompositeFieldContainer[Department]
    total_head_count: int
    def __init__(self, departments: _Optional[_Iterable[_Union[Department, _Mapping]]] = ..., total_head_count: _Optional[int] = ...) -> None: ...

class UpdateTitleRequest(_message.Message):
    __slots__ = ("person_id", "title")
    PERSON_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    person_id: str
    title: str
    def __init__(self, person_id: _Optional[str] = ..., title: _Optional[str] = ...) -> None: ...

class RequestTimeOffRequest(_message.Message):
    __slots__ = ("person_id", "start_date", "end_date", "reason")
    PERSON_ID_FIELD_NUMBER: _ClassVar[int]
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    person_id: str
    start_date: _date_pb2.Date
    end_date: _date_pb2.Date
    reason: str
    def __init__(self, person_id: _Optional[str] = ..., start_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., end_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class TimeOffRequest(_message.Message):
    __slots__ = ("id", "person_id", "start_date", "end_date", "working_days", "reason", "state")
    ID_FIELD_NUMBER: _ClassVar[int]
    PERSON_ID_FIELD_NUMBER: _ClassVar[int]
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    WORKING_DAYS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    id: str
    person_id: str
    start_date: _date_pb2.Date
    end_date: _date_pb2.Date
    working_days: int
    reason: str
    state: str
    def __init__(self, id: _Optional[str] = ..., person_id: _Optional[str] = ..., start_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., end_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., working_days: _Optional[int] = ..., reason: _Optional[str] = ..., state: _Optional[str] = ...) -> None: ...

class TerminateEmploymentRequest(_message.Message):
    __slots__ = ("person_id", "last_day")
    PERSON_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_DAY_FIELD_NUMBER: _ClassVar[int]
    person_id: str
    last_day: _date_pb2.Date
    def __init__(self, person_id: _Optional[str] = ..., last_day: _Optional[_Union[_date_pb2.Date, _Mapping]] = ...) -> None: ...
