"""Side-by-side peers: the same work through agentd and other agent frameworks."""
