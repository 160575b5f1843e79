"""The running app: the model workers (engines), a show (pipeline), commands, the outbox, the session log."""
