"""Events to plugins: the bus with its bounded inboxes and dispatcher, and what feeds it (the queue
streams, the samplers)."""
