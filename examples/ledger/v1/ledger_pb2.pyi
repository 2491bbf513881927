import datetime

from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.type import date_pb2 as _date_pb2
from google.type import dayofweek_pb2 as _dayofweek_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Category(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CATEGORY_UNSPECIFIED: _ClassVar[Category]
    CATEGORY_RENT: _ClassVar[Category]
    CATEGORY_UTILITIES: _ClassVar[Category]
    CATEGORY_PAYROLL: _ClassVar[Category]
    CATEGORY_SOFTWARE: _ClassVar[Category]
    CATEGORY_TRAVEL: _ClassVar[Category]
    CATEGORY_MEALS: _ClassVar[Category]
    CATEGORY_OFFICE_SUPPLIES: _ClassVar[Category]
    CATEGORY_MARKETING: _ClassVar[Category]
    CATEGORY_PROFESSIONAL_SERVICES: _ClassVar[Category]
    CATEGORY_INSURANCE: _ClassVar[Category]
    CATEGORY_INCOME: _ClassVar[Category]

class Dimension(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIMENSION_UNSPECIFIED: _ClassVar[Dimension]
    DIMENSION_CATEGORY: _ClassVar[Dimension]
    DIMENSION_VENDOR: _ClassVar[Dimension]
    DIMENSION_MONTH: _ClassVar[Dimension]
CATEGORY_UNSPECIFIED: Category
CATEGORY_RENT: Category
CATEGORY_UTILITIES: Category
CATEGORY_PAYROLL: Category
CATEGORY_SOFTWARE: Category
CATEGORY_TRAVEL: Category
CATEGORY_MEALS: Category
CATEGORY_OFFICE_SUPPLIES: Category
CATEGORY_MARKETING: Category
CATEGORY_PROFESSIONAL_SERVICES: Category
CATEGORY_INSURANCE: Category
CATEGORY_INCOME: Category
DIMENSION_UNSPECIFIED: Dimension
DIMENSION_CATEGORY: Dimension
DIMENSION_VENDOR: Dimension
DIMENSION_MONTH: Dimension

class Transaction(_message.Message):
    __slots__ = ("id", "booked_date", "amount_minor", "currency", "vendor_id", "category", "memo", "labels", "create_time")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    BOOKED_DATE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    VENDOR_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    MEMO_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    booked_date: _date_pb2.Date
    amount_minor: int
    currency: str
    vendor_id: str
    category: Category
    memo: str
    labels: _containers.ScalarMap[str, str]
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., booked_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., amount_minor: _Optional[int] = ..., currency: _Optional[str] = ..., vendor_id: _Optional[str] = ..., category: _Optional[_Union[Category, str]] = ..., memo: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Vendor(_message.Message):
    __slots__ = ("id", "name", "website", "phone", "address", "hours", "default_category", "update_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    WEBSITE_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HOURS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    website: str
    phone: str
    address: Address
    hours: _containers.RepeatedCompositeFieldContainer[OpeningHours]
    default_category: Category
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., website: _Optional[str] = ..., phone: _Optional[str] = ..., address: _Optional[_Union[Address, _Mapping]] = ..., hours: _Optional[_Iterable[_Union[OpeningHours, _Mapping]]] = ..., default_category: _Optional[_Union[Category, str]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Address(_message.Message):
    __slots__ = ("street", "city", "postal_code", "country_code")
    STREET_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    POSTAL_CODE_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_CODE_FIELD_NUMBER: _ClassVar[int]
    street: str
    city: str
    postal_code: str
    country_code: str
    def __init__(self, street: _Optional[str] = ..., city: _Optional[str] = ..., postal_code: _Optional[str] = ..., country_code: _Optional[str] = ...) -> None: ...

class OpeningHours(_message.Message):
    __slots__ = ("day", "opens", "closes")
    DAY_FIELD_NUMBER: _ClassVar[int]
    OPENS_FIELD_NUMBER: _ClassVar[int]
    CLOSES_FIELD_NUMBER: _ClassVar[int]
    day: _dayofweek_pb2.DayOfWeek
    opens: str
    closes: str
    def __init__(self, day: _Optional[_Union[_dayofweek_pb2.DayOfWeek, str]] = ..., opens: _Optional[str] = ..., closes: _Optional[str] = ...) -> None: ...

class ListTransactionsRequest(_message.Message):
    __slots__ = ("start_date", "end_date", "vendor_id", "category", "page_size", "page_token")
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    VENDOR_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    start_date: _date_pb2.Date
    end_date: _date_pb2.Date
    vendor_id: str
    category: Category
    page_size: int
    page_token: str
    def __init__(self, start_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., end_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., vendor_id: _Optional[str] = ..., category: _Optional[_Union[Category, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTransactionsResponse(_message.Message):
    __slots__ = ("transactions", "next_page_token", "total_size")
    TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    transactions: _containers.RepeatedCompositeFieldContainer[Transaction]
    next_page_token: str
    total_size: int
    def __init__(self, transactions: _Optional[_Iterable[_Union[Transaction, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class SummarizeTransactionsRequest(_message.Message):
    __slots__ = ("start_date", "end_date", "group_by", "vendor_id", "category", "top_n", "include_income")
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    VENDOR_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TOP_N_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_INCOME_FIELD_NUMBER: _ClassVar[int]
    start_date: _date_pb2.Date
    end_date: _date_pb2.Date
    group_by: Dimension
    vendor_id: str
    category: Category
    top_n: int
    include_income: bool
    def __init__(self, start_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., end_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., group_by: _Optional[_Union[Dimension, str]] = ..., vendor_id: _Optional[str] = ..., category: _Optional[_Union[Category, str]] = ..., top_n: _Optional[int] = ..., include_income: _Optional[bool] = ...) -> None: ...

class SummarizeTransactionsResponse(_message.Message):
    __slots__ = ("groups", "total_minor", "currency", "transaction_count")
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_COUNT_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[SummaryGroup]
    total_minor: int
    currency: str
    transaction_count: int
    def __init__(self, groups: _Optional[_Iterable[_Union[SummaryGroup, _Mapping]]] = ..., total_minor: _Optional[int] = ..., currency: _Optional[str] = ..., transaction_count: _Optional[int] = ...) -> None: ...

class SummaryGroup(_message.Message):
    __slots__ = ("key", "label", "total_minor", "count")
    KEY_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MINOR_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    key: str
    label: str
    total_minor: int
    count: int
    def __init__(self, key: _Optional[str] = ..., label: _Optional[str] = ..., total_minor: _Optional[int] = ..., count: _Optional[int] = ...) -> None: ...

class GetVendorRequest(_message.Message):
    __slots__ = ("vendor_id",)
    VENDOR_ID_FIELD_NUMBER: _ClassVar[int]
    vendor_id: str
    def __init__(self, vendor_id: _Optional[str] = ...) -> None: ...

class SearchVendorsRequest(_message.Message):
    __slots__ = ("query", "limit")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    query: str
    limit: int
    def __init__(self, query: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class SearchVendorsResponse(_message.Message):
    __slots__ = ("vendors",)
    VENDORS_FIELD_NUMBER: _ClassVar[int]
    vendors: _containers.RepeatedCompositeFieldContainer[Vendor]
    def __init__(self, vendors: _Optional[_Iterable[_Union[Vendor, _Mapping]]] = ...) -> None: ...

class UpdateVendorRequest(_message.Message):
    __slots__ = ("vendor", "update_mask")
    VENDOR_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    vendor: Vendor
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, vendor: _Optional[_Union[Vendor, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class ExportTransactionsRequest(_message.Message):
    __slots__ = ("start_date", "end_date")
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    start_date: _date_pb2.Date
    end_date: _date_pb2.Date
    def __init__(self, start_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., end_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ...) -> None: ...
