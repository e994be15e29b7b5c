"""The new order service: builds its read model from the monolith's order events, and takes
over the order writes (event-sourced, the monolith's contract; see writes.py)."""
