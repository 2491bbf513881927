"""The gRPC edge: AgentService, the daemon that serves it, auth, alerts and feedback.

The only package that speaks the generated ``agentd.v1`` messages to callers; the loop
below it works on plain Python state (``agentd.loop.state``).
"""
