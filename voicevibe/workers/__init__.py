"""Model worker processes: the pipe protocol and the supervisor that keeps them running."""
