"""The durable-run domain, without gRPC: start, resume, approve or reject, expire, take over,
the journal and final save, the supervisor, conversation history, and domain errors. Edges
(agentd/api/ for gRPC) parse their requests into ``RunSpec`` / ``CallDecision``, call
``Runs`` and map ``runs.errors`` to their own statuses."""
