"""Speech to text: Kyutai's streaming model in its worker process, and phrases."""
