"""The example staff directory (`DirectoryService`): nested messages, enums, a stream."""
