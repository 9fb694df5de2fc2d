"""The fault suite: real `switchyard serve` processes over one SQLite file and a real
Redis, killed, paused, drained and starved while clients write and watch. Each scenario
checks what a client can see (every acknowledged write present, every revision delivered
once and in order) and then the database's own invariants (`switchyard verify`)."""
