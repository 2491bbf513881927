"""Comments from ``SourceCodeInfo``, keyed by the full names the schema walk looks up.

Descriptors served over reflection (and the ones in generated ``_pb2`` modules) carry no source
info, so this usually returns an empty dict; a FileDescriptorSet made with
``protoc --include_source_info`` carries the comments, which then become schema descriptions.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from google.protobuf.descriptor_pb2 import (
    DescriptorProto,
    EnumDescriptorProto,
    FileDescriptorProto,
)

__all__ = ["comments_from_files"]

# Field numbers inside descriptor.proto: a SourceCodeInfo path is a walk of these.
_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE = 4, 5, 6
_MESSAGE_FIELD, _MESSAGE_NESTED, _MESSAGE_ENUM = 2, 3, 4
_ENUM_VALUE = 2
_SERVICE_METHOD = 2


def comments_from_files(files: Iterable[FileDescriptorProto]) -> dict[str, str]:
    """Leading (else trailing) comments keyed by full name.

    Keys: messages "pkg.Msg", fields "pkg.Msg.field", enums "pkg.Enum", enum values
    "pkg.Enum.VALUE", services "pkg.Service", methods "pkg.Service.Method", nested messages
    "pkg.Outer.Inner". Empty dict when the files carry no SourceCodeInfo.
    """
    result: dict[str, str] = {}
    for file in files:
        if not file.HasField("source_code_info"):
            continue
        names = dict(_file_paths(file))
        for location in file.source_code_info.location:
            name = names.get(tuple(location.path))
            if name is None:
                continue
            text = _clean(location.leading_comments) or _clean(location.trailing_comments)
            if text:
                result[name] = text
    return result


def _clean(comment: str) -> str:
    """Comment text without the single leading space protoc keeps on each line."""
    lines = [line[1:] if line.startswith(" ") else line for line in comment.splitlines()]
    return "\n".join(lines).strip()


def _file_paths(file: FileDescriptorProto) -> Iterator[tuple[tuple[int, ...], str]]:
    prefix = f"{file.package}." if file.package else ""
    for i, message in enumerate(file.message_type):
        yield from _message_paths(message, (_FILE_MESSAGE, i), prefix + message.name)
    for i, enum in enumerate(file.enum_type):
        yield from _enum_paths(enum, (_FILE_ENUM, i), prefix + enum.name)
    for i, service in enumerate(file.service):
        name = prefix + service.name
        yield (_FILE_SERVICE, i), name
        for j, method in enumerate(service.method):
            yield (_FILE_SERVICE, i, _SERVICE_METHOD, j), f"{name}.{method.name}"


def _message_paths(
    message: DescriptorProto, path: tuple[int, ...], name: str
) -> Iterator[tuple[tuple[int, ...], str]]:
    yield path, name
    for i, field in enumerate(message.field):
        yield (*path, _MESSAGE_FIELD, i), f"{name}.{field.name}"
    for i, nested in enumerate(message.nested_type):
        yield from _message_paths(nested, (*path, _MESSAGE_NESTED, i), f"{name}.{nested.name}")
    for i, enum in enumerate(message.enum_type):
        yield from _enum_paths(enum, (*path, _MESSAGE_ENUM, i), f"{name}.{enum.name}")


def _enum_paths(
    enum: EnumDescriptorProto, path: tuple[int, ...], name: str
) -> Iterator[tuple[tuple[int, ...], str]]:
    yield path, name
    for i, value in enumerate(enum.value):
        yield (*path, _ENUM_VALUE, i), f"{name}.{value.name}"
